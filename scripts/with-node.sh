#!/usr/bin/env bash
# Runs a command with Node 24 and the project's node_modules/.bin first on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/node-env.sh
. "$root/scripts/node-env.sh"
PATH="$root/node_modules/.bin:$PATH"
exec "$@"
