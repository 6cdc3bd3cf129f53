import { execFile } from 'node:child_process';
import { constants, readFileSync, statSync } from 'node:fs';
import { type FileHandle, open, readFile, rename } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { OutputBytes, OutputStream } from '../core/job.ts';
import {
  encodeKeptFile,
  encodeKeptSlot,
  isJsonKeptFile,
  KEPT_FILE_MAX_BYTES,
  newestKeptRecord,
} from './kept-record.ts';
import { isNotFound, outputPaths } from './output-files.ts';

/**
 * Retention keeps each stream's newest `capBytes` and frees older disk blocks by punching a
 * hole at the start of the file: the logical size and every byte cursor stay valid, and the
 * hole reads back as zeros. So that no reader ever returns those zeros as data, where each
 * stream's kept window starts is persisted in `kept.json` BEFORE any punch; readers treat bytes
 * before it as dropped and check it again after reading.
 *
 * That write must work on a full disk, since the punch after it is what frees room, and the job's
 * own output may be what filled it. `kept.json` is rewritten in place, in one of two checksummed
 * slots (`kept-record.ts`), which takes no new block; its first write, which does, is given room by
 * the server's spare file when the disk has none (`RetentionEnforcer`). A file per job made at its
 * start instead would cost every job a block it almost never uses. Punching first cannot be made
 * safe: a crash between the punch and the write leaves on disk a window that starts before the
 * hole, whose zeros readers would then serve as output.
 */

/**
 * Where each stream's kept window starts: bytes before it were dropped (by retention, or by the job
 * itself). `fileStart`, when present: where in each stream its file's first byte now lies. A job
 * that reopens its own stdout or stderr with `O_TRUNC` (`echo x > /dev/stderr`, `tee /dev/stdout`)
 * truncates the file; the monitor then records that the file restarts at the end the stream had
 * reached, so that stream offsets (cursors, the combined index) keep growing and the bytes the job
 * wrote after the truncation follow the ones before. Stream offset `n` is file offset
 * `n - fileStart`; the window starts at `fileStart` or later. Absent: every file starts at 0.
 */
export type KeptWindow = OutputBytes & { readonly fileStart?: OutputBytes };

/** Where `stream`'s file starts in the stream (0 unless its job truncated it). */
export function fileStartOf(kept: KeptWindow | undefined, stream: OutputStream): number {
  return kept?.fileStart?.[stream] ?? 0;
}

/** Stream offsets of file sizes read as they are (`readOutputSizes`), by the kept window's `fileStart`. */
export function streamSizes(fileSizes: OutputBytes, kept: KeptWindow | undefined): OutputBytes {
  return {
    stdout: fileSizes.stdout + fileStartOf(kept, 'stdout'),
    stderr: fileSizes.stderr + fileStartOf(kept, 'stderr'),
  };
}

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
    // Aligned in the file, where the hole is punched: a truncated stream's file starts mid-stream.
    const inFile = start - fileStartOf(kept, stream);
    return Math.max(kept[stream], start - (((inFile % PUNCH_ALIGN) + PUNCH_ALIGN) % PUNCH_ALIGN));
  };
  const window = { stdout: next('stdout'), stderr: next('stderr') };
  return kept.fileStart ? { ...window, fileStart: kept.fileStart } : window;
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
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (isNotFound(err)) return { stdout: 0, stderr: 0 };
    throw err;
  }
  return parseKeptWindow(dir, bytes);
}

/**
 * `readKeptWindow` in synchronous calls: a few bytes of a page-cached file, for live-tail reads,
 * twice in each (before and after it). Stat first, as there: a failed read built an ENOENT error
 * every time, a tenth of what a follower's reads allocated.
 */
export function readKeptWindowSync(dir: string): KeptWindow {
  const path = outputPaths(dir).kept;
  if (statSync(path, { throwIfNoEntry: false }) === undefined) return { stdout: 0, stderr: 0 };
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    if (isNotFound(err)) return { stdout: 0, stderr: 0 };
    throw err;
  }
  return parseKeptWindow(dir, bytes);
}

function parseKeptWindow(dir: string, bytes: Buffer): KeptWindow {
  if (isJsonKeptFile(bytes)) return parseJsonKeptWindow(dir, bytes.toString('utf8'));
  // Only ever renamed into place holding a valid record, and only one slot is written at a time:
  // none valid is a damaged file, and no window is better than a wrong one.
  const newest = newestKeptRecord(bytes);
  if (!newest) throw new Error(`${outputPaths(dir).kept} holds no valid kept window`);
  return newest.record.kept;
}

/** The JSON of a past server's retention. */
function parseJsonKeptWindow(dir: string, text: string): KeptWindow {
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
 * Persists the kept window, on disk when this resolves (a punch may follow at once). Readers see
 * the old window or the new one, and after a crash the window on disk is never behind a punch
 * already made. Written in place, over the slot of `kept.json` that does not hold the newest
 * record, which takes no new disk block on a filesystem that overwrites in place (ext4, XFS,
 * tmpfs; not a copy-on-write one such as Btrfs or ZFS). The first time (or over the JSON of a past
 * server), into a new file, renamed into place: that takes a block (on a full disk, the spare
 * file's: `RetentionEnforcer`).
 */
export async function writeKeptWindow(dir: string, kept: KeptWindow): Promise<void> {
  const path = outputPaths(dir).kept;
  const file = await open(path, constants.O_RDWR).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  if (file) {
    try {
      const bytes = Buffer.alloc(KEPT_FILE_MAX_BYTES);
      const { bytesRead } = await file.read(bytes, 0, bytes.length, 0);
      const current = isJsonKeptFile(bytes) ? undefined : newestKeptRecord(bytes.subarray(0, bytesRead));
      if (current) {
        const next = { sequence: current.record.sequence + 1, kept };
        const slot = encodeKeptSlot(next, 1 - current.slot);
        await writeAll(file, slot.bytes, slot.offset);
        await file.datasync();
        return;
      }
    } finally {
      await file.close();
    }
  }
  const temp = `${path}.tmp`;
  // Not truncated: one a crash left has its block overwritten, not given back and asked for again.
  const first = await open(temp, constants.O_WRONLY | constants.O_CREAT, 0o600);
  try {
    await writeAll(first, encodeKeptFile({ sequence: 1, kept }), 0);
    await first.sync();
  } finally {
    await first.close();
  }
  await rename(temp, path);
  await syncDirectory(dir);
}

async function writeAll(file: FileHandle, bytes: Buffer, position: number): Promise<void> {
  const { bytesWritten } = await file.write(bytes, 0, bytes.length, position);
  if (bytesWritten !== bytes.length) {
    throw new Error(`Wrote ${bytesWritten} of the ${bytes.length} bytes of the kept window`);
  }
}

/** Makes a rename in `dir` durable before the punch that relies on it. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // A filesystem that cannot sync a directory (some FUSE ones) orders its renames itself.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    await handle.close();
  }
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
