import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { OutputBytes, OutputStream } from '../core/job.ts';
import { isNotFound, outputPaths } from './output-files.ts';

/**
 * Retention keeps each stream's newest `capBytes` and frees older disk blocks by punching a
 * hole at the start of the file: the logical size and every byte cursor stay valid, and the
 * hole reads back as zeros. So that no reader ever returns those zeros as data, where each
 * stream's kept window starts is persisted in `kept.json` BEFORE any punch; readers treat bytes
 * before it as dropped and check it again after reading.
 */

/** Where each stream's kept window starts: bytes before it were dropped. */
export type KeptWindow = OutputBytes;

/** Holes are punched in whole 4 KiB blocks, so kept windows start on a block boundary. */
export const PUNCH_ALIGN = 4096;

/** How far a stream may grow past its cap before a punch: punches stay rare and cheap. */
export function retentionSlack(capBytes: number): number {
  return Math.max(Math.floor(capBytes / 8), 64 * 1024);
}

/**
 * The kept window after observing `sizes`: a stream whose kept bytes exceed cap + slack keeps
 * its newest `capBytes` (rounded up to the block boundary before them). Never moves backwards.
 */
export function nextKeptWindow(kept: KeptWindow, sizes: OutputBytes, capBytes: number): KeptWindow {
  const slack = retentionSlack(capBytes);
  const next = (stream: OutputStream): number => {
    if (sizes[stream] - kept[stream] <= capBytes + slack) return kept[stream];
    const start = sizes[stream] - capBytes;
    return Math.max(kept[stream], start - (start % PUNCH_ALIGN));
  };
  return { stdout: next('stdout'), stderr: next('stderr') };
}

/**
 * The job's kept window; all zeros for a job that never dropped anything. Most jobs never do and
 * have no kept file: a synchronous stat says so (a few microseconds), where a read failed through
 * the thread pool and built an ENOENT error at every job's first observation and every catch-up
 * (2.6 % of the server's busy time in `npm run bench -- start-rate`).
 */
export async function readKeptWindow(dir: string): Promise<KeptWindow> {
  const path = outputPaths(dir).kept;
  if (statSync(path, { throwIfNoEntry: false }) === undefined) return { stdout: 0, stderr: 0 };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return { stdout: 0, stderr: 0 };
    throw err;
  }
  return parseKeptWindow(dir, text);
}

/**
 * `readKeptWindow` in synchronous calls: a few bytes of a page-cached file, for live-tail reads,
 * twice in each (before and after it). Stat first, as there: a failed read built an ENOENT error
 * every time, a tenth of what a follower's reads allocated.
 */
export function readKeptWindowSync(dir: string): KeptWindow {
  const path = outputPaths(dir).kept;
  if (statSync(path, { throwIfNoEntry: false }) === undefined) return { stdout: 0, stderr: 0 };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return { stdout: 0, stderr: 0 };
    throw err;
  }
  return parseKeptWindow(dir, text);
}

function parseKeptWindow(dir: string, text: string): KeptWindow {
  const value = JSON.parse(text) as Partial<Record<OutputStream, unknown>>;
  const start = (stream: OutputStream): number => {
    const n = value[stream];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new Error(`${outputPaths(dir).kept} has no valid ${stream} start`);
    }
    return n;
  };
  return { stdout: start('stdout'), stderr: start('stderr') };
}

/**
 * Persists the kept window atomically (temp file, fsync, rename): a reader sees the old window
 * or the new one, and after a crash the window on disk is never behind a punch already made.
 */
export async function writeKeptWindow(dir: string, kept: KeptWindow): Promise<void> {
  const path = outputPaths(dir).kept;
  const temp = `${path}.tmp`;
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify({ stdout: kept.stdout, stderr: kept.stderr }));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
}

const run = promisify(execFile);

/**
 * Frees the disk blocks of bytes [0, length) of `path` without changing its size.
 * Node has no fallocate API, so this runs util-linux's fallocate(1). Punching a range that is
 * already a hole is cheap, so the whole dropped prefix is punched each time: a punch that an
 * earlier crash or failure skipped is made up for by the next one.
 */
export async function punchHole(path: string, length: number, fallocate = 'fallocate'): Promise<void> {
  if (length <= 0) return;
  try {
    await run(fallocate, ['--punch-hole', '--keep-size', '--offset', '0', '--length', String(length), path]);
  } catch (err) {
    throw new HolePunchError(path, length, err);
  }
}

/** A punch that failed. The bytes are intact; only their disk blocks were not freed. */
export class HolePunchError extends Error {
  /** True when fallocate(1) is not installed: no punch can work on this host. */
  readonly toolMissing: boolean;
  constructor(path: string, length: number, cause: unknown) {
    const stderr = String((cause as { stderr?: unknown }).stderr ?? '').trim();
    super(`Could not free the first ${length} bytes of ${path}: ${stderr || (cause as Error).message}`, {
      cause,
    });
    this.name = 'HolePunchError';
    this.toolMissing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
