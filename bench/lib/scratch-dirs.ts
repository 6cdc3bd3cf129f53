import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where the bench makes its directories (servers' data, baselines' files): /var/tmp, on disk as a
 * server's data directory is, and away from /tmp, which test suites fill and empty by the
 * thousand directories (see `removeAfterRun` for what that costs the next files made nearby: the
 * same 2,000 starts took 6.0 s with the server's data in /tmp after a test run, 2.0 s in
 * /var/tmp). `JW_BENCH_TMPDIR` names another.
 */
export const BENCH_DIR = process.env.JW_BENCH_TMPDIR || '/var/tmp';

/** A new directory in `BENCH_DIR` named `prefix` and six random characters. */
export async function makeScratchDir(prefix: string): Promise<string> {
  await mkdir(BENCH_DIR, { recursive: true });
  return mkdtemp(join(BENCH_DIR, prefix));
}

/** Directories given up by scenarios, removed by `removeScratchDirs` once the run is over. */
const pending = new Set<string>();

/**
 * Removes `dir` once the whole run is over (`removeScratchDirs`), not as the scenario that made it
 * ends. Removing a data directory of thousands of jobs frees as many inodes, and on ext4 without
 * a journal (this machine's root file system) every inode allocated in the next one to six minutes
 * in the same block group first skips each of them (the kernel's `recently_deleted` in
 * `find_inode_bit`): right after another scenario's cleanup, each file and directory a job made
 * cost up to 1 ms of kernel time, and `start-rate` fell from 912 to 275 jobs/s. A user's server
 * does not start its work right after ten thousand jobs' directories were deleted beside it.
 */
export function removeAfterRun(dir: string): void {
  pending.add(dir);
}

/** Removes every directory given to `removeAfterRun` (bench/run.ts calls it at the end). */
export async function removeScratchDirs(): Promise<void> {
  const dirs = [...pending];
  pending.clear();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
