import { existsSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/**
 * Resolves once `dir` exists: a kernel watch on the nearest directory above it that does (a job's
 * directory appears only once the job is launched, after its submission was answered).
 */
export async function waitForDirectory(dir: string, timeoutMs = 20_000): Promise<void> {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) await waitForDirectory(parent, timeoutMs);
  await new Promise<void>((resolve, reject) => {
    const watcher = watch(parent);
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`Timed out waiting for ${dir} to exist`));
    }, timeoutMs);
    const check = () => {
      if (!existsSync(dir)) return;
      clearTimeout(timer);
      watcher.close();
      resolve();
    };
    watcher.on('change', check);
    check();
  });
}

/** Resolves with a file's content once it contains `text` (a kernel watch on its directory; no sleeping). */
export async function waitForFileText(path: string, text: string, timeoutMs = 20_000): Promise<string> {
  const read = () => readFile(path, 'utf8').catch(() => '');
  const first = await read();
  if (first.includes(text)) return first;
  await waitForDirectory(dirname(path), timeoutMs);
  return new Promise((resolve, reject) => {
    const watcher = watch(dirname(path));
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`Timed out waiting for ${JSON.stringify(text)} in ${path}`));
    }, timeoutMs);
    const check = async () => {
      const content = await read();
      if (content.includes(text)) {
        clearTimeout(timer);
        watcher.close();
        resolve(content);
      }
    };
    watcher.on('change', (_event, name) => {
      if (name === null || name.toString() === basename(path)) void check();
    });
    void check();
  });
}

/** True while a pid exists and is not a zombie. */
export async function pidAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '');
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * SIGKILLs the process group a job leads, if it is still there. Refuses anything but a pid above
 * 1: `process.kill(-0)` (a pid of `null` or `0` negated) signals the caller's own process group,
 * which is the test runner's and, under CI, every process of the run.
 */
export function killProcessGroup(pid: unknown): void {
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 1) {
    throw new Error(`killProcessGroup: ${String(pid)} is not the pid of a job's process group`);
  }
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Fails with `what` if `promise` has not settled within `ms` (a deadline, not a sleep). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `check` every 10 ms until it holds, for at most `timeoutMs` (a condition awaited, not a
 * sleep): for what sends no event, such as a row another process writes or a process gone.
 */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
