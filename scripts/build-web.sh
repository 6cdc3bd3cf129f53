#!/usr/bin/env bash
# Builds the dashboard (web/, Preact + TypeScript) with Vite into dist/web, which the server serves
# at `/` (docs/dashboard.md). Rebuilt only when web/ or the lock file changed since the last build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
stamp=dist/web/.built
if [ -f "$stamp" ] && [ -z "$(find web package-lock.json src/api/rest/job-json.ts src/core/job.ts -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
if [ ! -x node_modules/.bin/vite ]; then
  echo "build-web: vite is not installed (run scripts/setup.sh); the dashboard is not built" >&2
  exit 1
fi
node_modules/.bin/vite build --config web/vite.config.ts
touch "$stamp"
echo "build-web: dist/web emitted" >&2
