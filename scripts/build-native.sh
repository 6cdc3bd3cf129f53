#!/usr/bin/env bash
# Compiles jobworker's one native part, the spawner (src/runtime/native/jobworker-spawner.c),
# into dist/native/jobworker-spawner when it is missing or older than its source.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/src/runtime/native/jobworker-spawner.c"
out="$root/dist/native/jobworker-spawner"
[ -x "$out" ] && [ "$out" -nt "$src" ] && exit 0
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
mkdir -p "$(dirname "$out")"
"$cc" -std=c99 -O2 -Wall -Wextra -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "build-native: built $out" >&2
