#!/usr/bin/env bash
# Emits the sources as JavaScript into dist/ (tsconfig.build.json) and bundles the CLI and the
# server (scripts/bundle-cli.ts, scripts/bundle-server.ts), so that the CLI and the server start
# without Node stripping TypeScript on every run: a CLI command is then about as quick to answer as
# `node -e 0`. bin/jobworker runs dist/jobworker.cjs, which checks the bundles against the sources
# they were made from and runs src/ directly when one changed, so a stale build is never run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
# The dashboard (web/ -> dist/web), with its own stamp: it does not depend on src/ being rebuilt.
bash scripts/build-web.sh
stamp=dist/.built
if [ -f "$stamp" ] && [ -z "$(find src package.json tsconfig.json tsconfig.build.json scripts/bundle-cli.ts scripts/bundle-server.ts scripts/bundle -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
rm -rf dist/src
mkdir -p dist
touch "$stamp.next"
node_modules/.bin/tsc -p tsconfig.build.json
# The bundles (dist/jobworker*.cjs); without esbuild installed, bin/jobworker runs src/.
rm -rf dist/jobworker*.cjs dist/jobworker*.cjs.map dist/jobworker*.LEGAL.txt dist/jobworker*.inputs.json dist/code-cache
if [ -d node_modules/esbuild ]; then
  node scripts/bundle-cli.ts
  node scripts/bundle-server.ts
fi
mv "$stamp.next" "$stamp"
# Fills Node's compile cache with the CLI's and the server's bundles (the first run of each
# compiles them): the next `doctor` loads them from it (`serve` compiles its bundle: see
# src/cli/bundle-entry.ts). Not worth failing the build for: without it the first `doctor` is
# slower, that is all.
bin/jobworker doctor --help >/dev/null 2>&1 || echo "build: warming the compile cache failed (harmless)" >&2
echo "build: dist/ emitted" >&2
