import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './pool.ts';

/**
 * Where the bench makes its directories (servers' data, baselines' files): /var/tmp, on disk as a
 * server's data directory is, and away from /tmp, which test suites fill and empty by the
 * thousand directories (see `removeAfterRun` for what that costs the next files made nearby: the
 * same 2,000 starts took 6.0-7.4 s with the server's files in /tmp after a test run, 2.0-2.2 s in
 * /var/tmp). `JW_BENCH_TMPDIR` names another.
 */
export const BENCH_DIR = process.env.JW_BENCH_TMPDIR || '/var/tmp';

/**
 * When the last run removed its directories (ms since the epoch, as text): in the checkout's
 * node_modules/.cache, not in /var/tmp, where anyone could put a link at a name known in advance.
 */
const REMOVED_AT = fileURLToPath(
  new URL('../../node_modules/.cache/jobworker-bench/removed-at', import.meta.url),
);
/**
 * How long after a removal the kernel still skips the freed inodes: 60 s from each inode's
 * deletion while its inode-table block is clean, 360 s while it is dirty, and a server making
 * files keeps dirtying those blocks with the inodes it takes (measured: 9,000 files removed, then
 * `sync`; a new file cost 28 us of CPU at once, 170-240 us from 30 to 130 s after). 370 s.
 * `JW_BENCH_NO_WAIT=1` skips the wait, for figures that make no files.
 */
const INODES_AGE_MS = 370_000;

/** Directories given up by scenarios, removed by `removeScratchDirs` once the run is over. */
const pending = new Set<string>();

/** A new directory in `BENCH_DIR` named `prefix` and six random characters. */
export async function makeScratchDir(prefix: string): Promise<string> {
  await mkdir(BENCH_DIR, { recursive: true });
  return mkdtemp(join(BENCH_DIR, prefix));
}

/**
 * Removes `dir` once the whole run is over (`removeScratchDirs`), not as the scenario that made it
 * ends. Removing a data directory of thousands of jobs frees as many inodes, and on ext4 without
 * a journal (this machine's root file system) every inode allocated in the next one to six minutes
 * in the same block group first skips each of them (the kernel's `recently_deleted` in
 * `find_inode_bit`): right after another scenario's cleanup, each file and directory a job made
 * cost up to 1 ms of kernel time, and `start-rate` fell from 912 to 275 jobs/s. A user's server
 * meets that only in the minutes after its retention deleted many jobs (docs/performance.md), not
 * at every start of its work. A run stopped by SIGINT or SIGTERM removes them at once.
 */
export function removeAfterRun(dir: string): void {
  if (!removedOnSignal) {
    removedOnSignal = true;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        for (const left of pending) rmSync(left, { recursive: true, force: true });
        process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
      });
    }
  }
  pending.add(dir);
}
/** Whether the SIGINT and SIGTERM handlers that remove what is pending are installed. */
let removedOnSignal = false;

/**
 * The environment of the servers the bench starts: their temp directory (where each job's io
 * directory is made and removed) in a scratch directory of `BENCH_DIR`, for the reason of
 * `removeAfterRun`. No `NODE_COMPILE_CACHE`: it would turn on Node's compile cache, which
 * `jobworker serve` leaves off (src/cli/bundle-entry.ts), so the server would not start as a
 * user's does.
 */
export async function serverTempEnv(): Promise<Readonly<Record<string, string>>> {
  serverTemp ??= makeScratchDir('jw-bench-tmp-').then((dir) => {
    removeAfterRun(dir);
    return dir;
  });
  const dir = await serverTemp;
  return { TMPDIR: dir };
}
let serverTemp: Promise<string> | undefined;

/**
 * Removes every directory given to `removeAfterRun` (bench/run.ts calls it at the end), writes
 * what was removed back to disk, and notes the time, for the next run's `awaitFreedInodes`.
 */
export async function removeScratchDirs(): Promise<void> {
  const dirs = [...pending];
  pending.clear();
  if (dirs.length === 0) return;
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  spawnSync('sync', { stdio: 'ignore' });
  await mkdir(dirname(REMOVED_AT), { recursive: true });
  await writeFile(REMOVED_AT, `${Date.now()}\n`);
}

/**
 * Waits, when the last run removed its directories less than `INODES_AGE_MS` ago, for the rest
 * of that time (bench/run.ts, before the first scenario): a run started right after another
 * would otherwise pay for the inodes the other freed (see `removeAfterRun`), as `start-rate` did:
 * 436 jobs/s a minute after a run against 880 alone, and 592 (against 806) 70 s after one.
 */
export async function awaitFreedInodes(log: (line: string) => void): Promise<void> {
  if (process.env.JW_BENCH_NO_WAIT === '1') return;
  const at = Number((await readFile(REMOVED_AT, 'utf8').catch(() => '0')).trim());
  // A time to come (the clock was set back) or garbage: no wait.
  if (!(at <= Date.now())) return;
  const wait = at + INODES_AGE_MS - Date.now();
  if (!(wait > 0)) return;
  log(
    `waiting ${Math.ceil(wait / 1000)} s: the last run removed its directories in ${BENCH_DIR} ` +
      `${Math.round((Date.now() - at) / 1000)} s ago, and until their inodes are six minutes old ` +
      'the kernel makes every new file nearby skip them (bench/lib/scratch-dirs.ts; ' +
      'JW_BENCH_NO_WAIT=1 to skip)',
  );
  await sleep(wait);
}
