#!/usr/bin/env bash
# Compiles jobworker's native parts into dist/native/, each when it is missing or older than its
# source:
# - the spawner (src/runtime/native/jobworker-spawner.c -> jobworker-spawner), which the server
#   needs to start jobs;
# - malloc-trim.node (src/memory/native/malloc-trim.c), a Node-API addon that lets the server give
#   glibc's free heap memory back once quiet. Optional: without the Node-API headers (the
#   node-api-headers package, or Node's own include/node) it is skipped with a message and the
#   server runs without it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-native: no C compiler; installing gcc with apt-get" >&2
    apt-get install -y gcc >&2 || { apt-get update >&2 && apt-get install -y gcc >&2; }
  fi
fi
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "build-native: no C compiler found (set CC, or install gcc: apt-get install gcc);" \
    "jobworker needs one to build its spawner" >&2
  exit 1
fi
mkdir -p "$root/dist/native"

src="$root/src/runtime/native/jobworker-spawner.c"
out="$root/dist/native/jobworker-spawner"
if ! { [ -x "$out" ] && [ "$out" -nt "$src" ]; }; then
  "$cc" -std=c99 -O2 -Wall -Wextra -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
  echo "build-native: built $out" >&2
fi

src="$root/src/memory/native/malloc-trim.c"
out="$root/dist/native/malloc-trim.node"
if ! { [ -f "$out" ] && [ "$out" -nt "$src" ]; }; then
  include=$root/node_modules/node-api-headers/include
  if [ ! -f "$include/node_api.h" ]; then
    node=$(command -v node || true)
    include=${node:+$(dirname "$(dirname "$node")")/include/node}
  fi
  if [ -n "$include" ] && [ -f "$include/node_api.h" ]; then
    # Node-API functions are resolved against the node binary when the addon is loaded.
    "$cc" -std=c99 -O2 -Wall -Wextra -shared -fPIC -I"$include" -o "$out.tmp" "$src"
    mv "$out.tmp" "$out"
    echo "build-native: built $out" >&2
  else
    echo "build-native: no Node-API headers (npm install brings node-api-headers);" \
      "the server will run without giving free malloc memory back" >&2
  fi
fi
