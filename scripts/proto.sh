#!/usr/bin/env bash
# The RPC contract's tooling, with buf from npm (node_modules/.bin/buf):
#   proto.sh check     buf lint, then buf breaking against the committed baseline image (npm test runs this)
#   proto.sh generate  regenerates src/api/rpc/gen from proto/ (buf.gen.yaml); commit the result
#   proto.sh baseline  rewrites the baseline image from proto/ as it is: do it when a release is cut
# There is no release tag yet, so `buf breaking` compares against proto/baseline.binpb, the
# contract as last accepted, committed beside it: comparing against `main` would compare main with
# itself once merged, and needs git history that a shallow clone lacks (docs/api.md, "RPC").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
buf=node_modules/.bin/buf
baseline=proto/baseline.binpb
case "${1:-check}" in
  check)
    "$buf" lint
    "$buf" breaking --against "$baseline"
    ;;
  generate)
    rm -rf src/api/rpc/gen
    "$buf" generate
    ;;
  baseline)
    "$buf" build -o "$baseline"
    ;;
  *)
    echo "usage: scripts/proto.sh [check|generate|baseline]" >&2
    exit 2
    ;;
esac
