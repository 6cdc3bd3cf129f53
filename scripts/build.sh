#!/usr/bin/env bash
# Emits the sources as JavaScript into dist/ (tsconfig.build.json), so that the CLI and the server
# start without Node stripping TypeScript on every run: a CLI command is then about as quick to
# answer as `node -e 0`. bin/jobworker runs dist/ while it is newer than every file of src/, and
# src/ directly otherwise, so a stale build is never run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
# The dashboard (web/ -> dist/web), with its own stamp: it does not depend on src/ being rebuilt.
bash scripts/build-web.sh
stamp=dist/.built
if [ -f "$stamp" ] && [ -z "$(find src package.json tsconfig.json tsconfig.build.json scripts/bundle-cli.ts scripts/bundle -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
rm -rf dist/src
mkdir -p dist
touch "$stamp.next"
node_modules/.bin/tsc -p tsconfig.build.json
# The CLI as one file (dist/jobworker.cjs); without esbuild installed, bin/jobworker runs dist/src/.
rm -f dist/jobworker.cjs
if [ -d node_modules/esbuild ]; then
  node scripts/bundle-cli.ts
fi
mv "$stamp.next" "$stamp"
echo "build: dist/ emitted" >&2
