/**
 * The wrapper every job starts through: POSIX sh, so it costs ~1 MB and a millisecond.
 *
 *   sh -c WRAPPER jobworker-wrapper JOB_DIR N CGROUP_PROCS_1 ... CGROUP_PROCS_N COMMAND [ARGS...]
 *
 * 1. It joins the job's cgroups *before* running the command, so every process the job
 *    ever forks is inside them (a stop can then find setsid and double-fork escapees).
 * 2. It survives the SIGTERM a stop sends to the process group (a trap with a command is
 *    reset to the default on exec, so the job itself still gets the signal as usual), waits
 *    for the command, and records the command's exit status in JOB_DIR/exit.
 * 3. The server may die meanwhile: the wrapper does not need it, and the next server
 *    reads JOB_DIR/exit. The record is one short line written by one write(2), so a reader
 *    sees either nothing or the whole line (a reader ignores a line with no newline).
 *
 * A stop that arrives before the command started keeps it from starting (`notstarted`):
 * the trap is the first thing the wrapper sets, so a stop is never swallowed.
 *
 * Exit records: a decimal status as the shell reports it (128+N after death by signal N,
 * which sh cannot tell apart from a command that itself exits 128+N), `notfound` when the
 * command could not be found, `cgroup` when the job could not join its cgroup,
 * `notstarted` when a stop came first.
 */
export const WRAPPER_SCRIPT = `trap 'stop=1' TERM INT HUP QUIT
dir=$1 n=$2
shift 2
while [ "$n" -gt 0 ]; do
  if ! echo $$ > "$1"; then printf 'cgroup\\n' > "$dir/exit"; exit 125; fi
  shift
  n=$((n - 1))
done
if [ -n "$stop" ]; then printf 'notstarted\\n' > "$dir/exit"; exit 143; fi
if ! command -v -- "$1" > /dev/null 2>&1; then
  printf 'jobworker: command not found: %s\\n' "$1" >&2
  printf 'notfound\\n' > "$dir/exit"
  exit 127
fi
"$@"
printf '%s\\n' "$?" > "$dir/exit"
`;

export const EXIT_FILE = 'exit';

/** The argv that runs `command` through the wrapper. */
export function wrapperArgs(
  dir: string,
  cgroupProcsFiles: readonly string[],
  command: readonly string[],
): string[] {
  return [
    '-c',
    WRAPPER_SCRIPT,
    'jobworker-wrapper',
    dir,
    String(cgroupProcsFiles.length),
    ...cgroupProcsFiles,
    ...command,
  ];
}
