import { constants } from 'node:fs';
import type { OutputBytes, OutputStream } from '../core/job.ts';
import {
  encodeRecord,
  endsAt,
  type IndexRecord,
  type IndexTail,
  RECORD_BYTES,
  readTail,
} from './index-record.ts';
import { isNotFound, OUTPUT_STREAMS } from './output-files.ts';
import { SyncFile } from './sync-file.ts';

export interface Observation {
  /** Whether the index grew: some stream had bytes that were not in the combined view yet. */
  readonly grew: boolean;
  /** Both stream ends as the combined view now covers them. */
  readonly observed: OutputBytes;
  /**
   * Streams whose size was smaller than the view already covers: a stale size (read before the
   * last append), or a file the job truncated. Ignored here; the monitor tells which.
   */
  readonly behind?: readonly OutputStream[];
}

/** Where an index ends: how many records it holds and the last of them. */
export type IndexEnd = Pick<IndexTail, 'count' | 'last'>;

/**
 * Records in `combined.idx` whatever the streams grew by since the last observation, stdout
 * before stderr when both grew, so that the combined view covers `sizes`. Growth of the stream
 * named by the last record extends that record in place, keeping the index small for jobs that
 * write mostly to one stream. Only one writer per job may call this (the job's monitor), one
 * call at a time. The file is opened and closed here: a job nobody follows holds no descriptor
 * between observations (a followed one's index is held open: `HeldFiles`). Its few small reads and
 * writes are synchronous (see `SyncFile`): no thread-pool round trips.
 */
export async function appendObserved(indexPath: string, sizes: OutputBytes): Promise<Observation> {
  const file = openIndexForAppend(indexPath, sizes);
  if (!file) return { grew: false, observed: { stdout: 0, stderr: 0 } };
  try {
    return (await appendRecords(file, await readIndexEnd(file), sizes)).observation;
  } finally {
    await file.close();
  }
}

/**
 * Opens the index for appending, created when some stream has bytes; none (undefined) for a job
 * that printed nothing and has none. A job that printed nothing needs no index (a missing one is
 * an empty one): most short jobs end so, and creating a file is a journal transaction of the
 * filesystem on the event loop.
 */
export function openIndexForAppend(indexPath: string, sizes: OutputBytes): SyncFile | undefined {
  const silent = OUTPUT_STREAMS.every((stream) => sizes[stream] === 0);
  try {
    return SyncFile.open(indexPath, constants.O_RDWR | (silent ? 0 : constants.O_CREAT), 0o600);
  } catch (err) {
    if (silent && isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Where an index open for appending ends, with a torn or partial record that a crash left at its
 * end dropped (the file truncated after the last whole one), so that nothing stale follows the
 * records appended next.
 */
export async function readIndexEnd(file: SyncFile): Promise<IndexEnd> {
  const tail = await readTail(file);
  if (tail.bytes !== tail.count * RECORD_BYTES) await file.truncate(tail.count * RECORD_BYTES);
  return { count: tail.count, last: tail.last };
}

/**
 * Appends to an index that ends at `end` (as `readIndexEnd` read it, or as the last append left
 * it) what `sizes` holds past it; resolves with the observation and where the index ends now.
 */
export async function appendRecords(
  file: SyncFile,
  end: IndexEnd,
  sizes: OutputBytes,
): Promise<{ observation: Observation; end: IndexEnd }> {
  let count = end.count;
  let last = end.last;
  const observed = { ...endsAt(last) };
  const changed: IndexRecord[] = [];
  const behind: OutputStream[] = [];
  let firstChanged = -1;
  for (const stream of OUTPUT_STREAMS) {
    // Stream offsets never go back (a truncated file restarts past them: `KeptWindow.fileStart`).
    if (sizes[stream] < observed[stream]) behind.push(stream);
    if (sizes[stream] <= observed[stream]) continue;
    const record: IndexRecord = {
      stream,
      streamEnd: sizes[stream],
      combinedEnd: observed.stdout + observed.stderr + (sizes[stream] - observed[stream]),
    };
    observed[stream] = sizes[stream];
    // Streams are visited in a fixed order, so only the first change can extend the last record.
    if (last?.stream === stream) {
      firstChanged = count - 1;
    } else {
      if (firstChanged < 0) firstChanged = count;
      count++;
    }
    changed.push(record);
    last = record;
  }
  // Named only when some stream is behind: the common observation keeps its shape.
  const late = behind.length > 0 ? { behind } : {};
  if (changed.length === 0) return { observation: { grew: false, observed, ...late }, end };
  const buffer = Buffer.alloc(changed.length * RECORD_BYTES);
  for (const [i, record] of changed.entries()) encodeRecord(record, buffer, i * RECORD_BYTES);
  await file.write(buffer, 0, buffer.length, firstChanged * RECORD_BYTES);
  return { observation: { grew: true, observed, ...late }, end: { count, last } };
}
