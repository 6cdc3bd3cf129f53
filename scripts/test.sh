#!/usr/bin/env bash
# The whole test suite: types, lint and format, then every test file under test/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
PATH="$root/node_modules/.bin:$PATH"
# The spawner every job starts through, and the CLI as JavaScript (the CLI tests run it as
# bin/jobworker does); each is rebuilt only when its sources changed.
bash scripts/build-native.sh
bash scripts/build.sh
# One command a line: under `set -e` a failure inside an `a && b` list does not stop the script
# (a type error went by unnoticed that way).
echo "== typecheck"
tsc --noEmit -p .
tsc --noEmit -p web
echo "== lint"
biome check .
# The RPC contract: buf lint, and buf breaking against the committed baseline (scripts/proto.sh).
echo "== proto"
bash scripts/proto.sh check
# The PostgreSQL store's tests need the local server: start it if it is down (a failure to start
# shows in those tests, which name the way to start it).
bash scripts/start-postgres.sh || true
echo "== tests (node $(node --version))"
# Test files are independent processes; two at a time fits the 2-core machine.
exec node --test --test-concurrency=2 --test-timeout=120000 "${@:-test/**/*.test.ts}"
