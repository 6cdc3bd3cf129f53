#!/usr/bin/env bash
# Compiles jobworker's native parts into dist/native/, each only when it is missing or was built
# from other sources (nothing, not even a compiler, is needed when all are current). "Other" is
# by content, not by date: each output has a stamp beside it (OUT.sources-sha256) holding a hash
# of its sources, the headers they share and this script; a copied or restored dist/ newer than
# an edited source is still rebuilt, and a checkout that only touched a source's date is not.
# - the spawner (src/runtime/native/jobworker-spawner.c -> jobworker-spawner), which the server
#   needs to start jobs: without a C compiler this fails and says how to get one;
# - three Node-API addons, each optional: without a compiler, without the Node-API headers (the
#   node-api-headers package, or Node's own include/node), or when it does not compile, it is
#   skipped with a message and the server runs without it:
#   - malloc-trim.node (src/memory/native/malloc-trim.c) lets the server give glibc's free heap
#     memory back once quiet;
#   - send-file.node (src/api/rest/native/send-file.c) lets it send a finished output's bytes to
#     a client with sendfile(2), inside the kernel;
#   - file-sizes.node (src/output/native/file-sizes.c) lets the output sweep stat the streams of
#     the jobs nobody follows on a pool thread, one call per sweep, instead of on the event loop;
# - the checkpoint helper (src/store/sqlite/native/jobworker-checkpointer.c ->
#   jobworker-checkpointer), optional too: it links SQLite's C library (Debian's libsqlite3-dev,
#   installed with apt-get when missing and possible); without it the server takes SQLite's
#   checkpoints on its event loop.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}

spawner_src="$root/src/runtime/native/jobworker-spawner.c"
spawner_out="$root/dist/native/jobworker-spawner"
trim_src="$root/src/memory/native/malloc-trim.c"
trim_out="$root/dist/native/malloc-trim.node"
send_src="$root/src/api/rest/native/send-file.c"
send_out="$root/dist/native/send-file.node"
sizes_src="$root/src/output/native/file-sizes.c"
sizes_out="$root/dist/native/file-sizes.node"
checkpointer_src="$root/src/store/sqlite/native/jobworker-checkpointer.c"
checkpointer_out="$root/dist/native/jobworker-checkpointer"
# What every addon includes (its shared helpers): an addon older than it is rebuilt too.
napi_helpers_h="$root/src/core/native/napi-helpers.h"

# The hash an output is built from: its sources' bytes (in order) and this script's (its compiler
# flags live here). Not the compiler: a machine without one must find what was built current.
sources_hash() {
  cat "$@" "$root/scripts/build-native.sh" | sha256sum | cut -d ' ' -f 1
}
# current OUT SRC...: OUT exists and its stamp names these sources' hash.
current() {
  local out=$1
  shift
  [ -f "$out" ] && [ -f "$out.sources-sha256" ] &&
    [ "$(cat "$out.sources-sha256")" = "$(sources_hash "$@")" ]
}
# stamp OUT SRC...: records what OUT was just built from (after its move into place, so that a
# build cut short leaves no stamp and is done again).
stamp() {
  local out=$1
  shift
  sources_hash "$@" > "$out.sources-sha256.tmp"
  mv "$out.sources-sha256.tmp" "$out.sources-sha256"
}

have_cc() {
  command -v "$cc" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-native: no C compiler; installing gcc with apt-get" >&2
    apt-get install -y gcc >&2 || { apt-get update >&2 && apt-get install -y gcc >&2; } || true
  fi
  command -v "$cc" >/dev/null 2>&1
}

mkdir -p "$root/dist/native"

if ! { current "$spawner_out" "$spawner_src" && [ -x "$spawner_out" ]; }; then
  if ! have_cc; then
    echo "build-native: no C compiler found (set CC, or install gcc: apt-get install gcc);" \
      "jobworker needs one to build its spawner" >&2
    exit 1
  fi
  # Linked statically where there is a static C library (Debian's libc6-dev has libc.a): every
  # wrapper is a fork of the spawner, and a static one has a few mappings where a dynamic one has
  # the loader's and libc's: fewer page tables for each fork to copy, fewer pages written after it
  # (docs/performance-history.md, tenth pass). Without one the same program is linked dynamically.
  static=
  case $("$cc" -print-file-name=libc.a 2>/dev/null) in
    /*) static=-static ;;
    *) echo "build-native: no static C library (libc.a); linking the spawner dynamically" >&2 ;;
  esac
  "$cc" -std=c99 -O2 -Wall -Wextra ${static:+"$static"} -o "$spawner_out.tmp" "$spawner_src"
  mv "$spawner_out.tmp" "$spawner_out"
  stamp "$spawner_out" "$spawner_src"
  echo "build-native: built $spawner_out" >&2
fi

# An optional Node-API addon: built when a compiler and the headers are there, else skipped with
# why and what the server does without it ($3).
build_addon() {
  local src=$1 out=$2 without=$3 include node
  current "$out" "$src" "$napi_helpers_h" && return 0
  include=$root/node_modules/node-api-headers/include
  if [ ! -f "$include/node_api.h" ]; then
    node=$(command -v node || true)
    include=${node:+$(dirname "$(dirname "$node")")/include/node}
  fi
  if [ -z "$include" ] || [ ! -f "$include/node_api.h" ]; then
    echo "build-native: no Node-API headers for $(basename "$out") (npm install brings" \
      "node-api-headers); $without" >&2
  elif ! have_cc; then
    echo "build-native: no C compiler for $(basename "$out"); $without" >&2
  # Node-API functions are resolved against the node binary when the addon is loaded.
  elif "$cc" -std=c99 -O2 -Wall -Wextra -shared -fPIC -I"$include" -o "$out.tmp" "$src"; then
    mv "$out.tmp" "$out"
    stamp "$out" "$src" "$napi_helpers_h"
    echo "build-native: built $out" >&2
  else
    rm -f "$out.tmp"
    echo "build-native: $(basename "$out") did not compile (above); $without" >&2
  fi
}

build_addon "$trim_src" "$trim_out" "the server will run without giving free malloc memory back"
build_addon "$send_src" "$send_out" \
  "the server will copy catch-up reads through its own buffers (slower, same bytes)"
build_addon "$sizes_src" "$sizes_out" \
  "the output sweep will stat the files of unfollowed jobs on the event loop (slower with thousands running)"

# SQLite's headers and library for the checkpoint helper: Debian's libsqlite3-dev.
have_sqlite() {
  printf '#include <sqlite3.h>\nint main(void){return sqlite3_libversion_number()>0?0:1;}\n' |
    "$cc" -x c -o /dev/null - -lsqlite3 >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-native: no SQLite development files; installing libsqlite3-dev with apt-get" >&2
    apt-get install -y libsqlite3-dev >&2 || { apt-get update >&2 && apt-get install -y libsqlite3-dev >&2; } || true
  fi
  printf '#include <sqlite3.h>\nint main(void){return sqlite3_libversion_number()>0?0:1;}\n' |
    "$cc" -x c -o /dev/null - -lsqlite3 >/dev/null 2>&1
}

if ! { current "$checkpointer_out" "$checkpointer_src" && [ -x "$checkpointer_out" ]; }; then
  without="the server will take SQLite's checkpoints on its event loop (stalls of up to ~130 ms)"
  if ! have_cc; then
    echo "build-native: no C compiler for jobworker-checkpointer; $without" >&2
  elif ! have_sqlite; then
    echo "build-native: no SQLite development files (libsqlite3-dev) for jobworker-checkpointer; $without" >&2
  # Linked dynamically: unlike the spawner, nothing forks it per job.
  elif "$cc" -std=c99 -O2 -Wall -Wextra -o "$checkpointer_out.tmp" "$checkpointer_src" -lsqlite3; then
    mv "$checkpointer_out.tmp" "$checkpointer_out"
    stamp "$checkpointer_out" "$checkpointer_src"
    echo "build-native: built $checkpointer_out" >&2
  else
    rm -f "$checkpointer_out.tmp"
    echo "build-native: jobworker-checkpointer did not compile (above); $without" >&2
  fi
fi
