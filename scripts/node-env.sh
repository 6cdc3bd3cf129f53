# Sourced by the project's scripts: puts Node 24 first on PATH.
# The machine's own node is used when it is new enough; otherwise the copy that
# scripts/setup.sh unpacked into .tools/node from the npm registry.
_jw_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_jw_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ -x "$_jw_root/.tools/node/bin/node" ]; then
  PATH="$_jw_root/.tools/node/bin:$PATH"
elif ! command -v node >/dev/null 2>&1 || [ "$(_jw_major node)" -lt 24 ]; then
  echo "jobworker needs Node 24: run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export PATH
unset -f _jw_major
