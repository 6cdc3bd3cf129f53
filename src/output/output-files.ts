import { close, constants, open, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { OutputBytes, OutputStream } from '../core/job.ts';

/**
 * The files of a job directory that belong to the output layer.
 * - `stdout`, `stderr`: the exact bytes the job wrote, written by the kernel (the job holds them
 *   as its fds 1 and 2). Retention may punch holes at their start. The server never shrinks them,
 *   but a job that reopens one by path without append (`echo x > /dev/stderr`) truncates it: the
 *   monitor then records where the file restarts in its stream (`KeptWindow.fileStart`).
 * - `combined.idx`: the combined order as observed, fixed-size binary records (see `combined-index.ts`).
 * - `kept.json`: where each stream's kept window starts (see `retention.ts`, `kept-record.ts`); absent until
 *   the first drop, which writes it as `kept.json.tmp` and renames it (on a full disk, with the room
 *   of the server's spare file: `RetentionEnforcer`).
 */
export const OUTPUT_FILE_NAMES = {
  stdout: 'stdout',
  stderr: 'stderr',
  combinedIndex: 'combined.idx',
  kept: 'kept.json',
} as const;

export const OUTPUT_STREAMS: readonly OutputStream[] = ['stdout', 'stderr'];

export interface OutputPaths {
  readonly stdout: string;
  readonly stderr: string;
  readonly combinedIndex: string;
  readonly kept: string;
}

/**
 * The output files of job directory `dir`. Joined by concatenation, not `path.join`: this runs
 * several times in every read of every follower and every observation, and `path.join` normalizes
 * its result piece by piece, which was a third of all the memory a followed job's reads allocated
 * (docs/performance-history.md, eleventh pass). A job directory is a normalized path the engine made with
 * `path.join`; `dir` with a trailing slash gets no second one.
 */
export function outputPaths(dir: string): OutputPaths {
  const base = dir.endsWith('/') ? dir : `${dir}/`;
  return {
    stdout: base + OUTPUT_FILE_NAMES.stdout,
    stderr: base + OUTPUT_FILE_NAMES.stderr,
    combinedIndex: base + OUTPUT_FILE_NAMES.combinedIndex,
    kept: base + OUTPUT_FILE_NAMES.kept,
  };
}

// The callback API gives a bare fd. A FileHandle would be closed (with a warning) if it were
// garbage-collected while the caller still owns its fd.
const openFd = promisify(open);
const closeFd = promisify(close);

/**
 * Creates the job's `stdout` and `stderr` (exclusive create, write-only, append, mode 0600) and
 * returns their raw fds, to be passed as the child's stdio. The caller closes both after spawning.
 * Append mode keeps every writer (the job and whatever it forks) at the end of the file.
 */
export async function openOutputFiles(dir: string): Promise<{ stdout: number; stderr: number }> {
  const paths = outputPaths(dir);
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL;
  const stdout = await openFd(paths.stdout, flags, 0o600);
  try {
    const stderr = await openFd(paths.stderr, flags, 0o600);
    return { stdout, stderr };
  } catch (err) {
    await closeFd(stdout);
    throw err;
  }
}

/**
 * The logical size of each stream file (bytes written so far, including any retention dropped); 0
 * when absent. Both are read at once, in no order: for a job's byte counts, never for the combined
 * index (see `STAT_ORDER`).
 */
export async function readOutputSizes(dir: string): Promise<OutputBytes> {
  const paths = outputPaths(dir);
  const [stdout, stderr] = await Promise.all([fileSize(paths.stdout), fileSize(paths.stderr)]);
  return { stdout, stderr };
}

/**
 * The order in which an observation reads the streams' sizes: the reverse of the order in which
 * the combined index records two streams that both grew (stdout, then stderr). The job writes
 * while the sizes are read, so whatever stderr bytes the first read counts were written before the
 * second read began, and with them every stdout byte written before them: `echo a; echo b >&2`
 * can never be recorded as b before a. Read the other way, a job could write both lines between
 * the two reads, the stdout read would see neither and the stderr one both, and the index would
 * put b first.
 */
export const STAT_ORDER: readonly OutputStream[] = ['stderr', 'stdout'];

/**
 * `readOutputSizes` with two synchronous `stat` calls, in `STAT_ORDER`: the monitor's observation
 * of a followed job, where a thread-pool round trip would cost a follower more than the calls
 * themselves.
 */
export function readOutputSizesSync(dir: string): OutputBytes {
  const paths = outputPaths(dir);
  return sizesInStatOrder((stream) => statSync(paths[stream], { throwIfNoEntry: false })?.size ?? 0);
}

/** Both streams' sizes, each read by `sizeOf` in `STAT_ORDER` (the order that matters: see there). */
export function sizesInStatOrder(sizeOf: (stream: OutputStream) => number): OutputBytes {
  const sizes = { stdout: 0, stderr: 0 };
  for (const stream of STAT_ORDER) sizes[stream] = sizeOf(stream);
  return sizes;
}

export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isNotFound(err)) return 0;
    throw err;
  }
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
