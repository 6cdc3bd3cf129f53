import type { OutputBytes, OutputStream } from '../core/job.ts';
import type { IndexFile } from './sync-file.ts';

/**
 * One record of `combined.idx`: "up to combined position `combinedEnd`, the view continued with
 * `stream`, up to byte `streamEnd` of that stream". 16 bytes, big-endian: the combined end as
 * a u64, then the stream end as a u64 whose top bit is the stream (0 stdout, 1 stderr).
 * Positions are safe integers (< 2^53), so each u64 is written as two u32 halves.
 *
 * Consecutive records always name different streams (growth of the stream named last extends
 * that record in place), so at any record boundary both stream ends are known:
 * the record's own `streamEnd`, and `combinedEnd - streamEnd` for the other one.
 */
export interface IndexRecord {
  readonly combinedEnd: number;
  readonly stream: OutputStream;
  readonly streamEnd: number;
}

export const RECORD_BYTES = 16;
const HIGH = 2 ** 32;
const STDERR_BIT = 0x8000_0000;

export function encodeRecord(record: IndexRecord, into: Buffer, at: number): void {
  into.writeUInt32BE(Math.floor(record.combinedEnd / HIGH), at);
  into.writeUInt32BE(record.combinedEnd % HIGH, at + 4);
  const high = Math.floor(record.streamEnd / HIGH);
  into.writeUInt32BE(record.stream === 'stderr' ? (high | STDERR_BIT) >>> 0 : high, at + 8);
  into.writeUInt32BE(record.streamEnd % HIGH, at + 12);
}

export function decodeRecord(from: Buffer, at: number): IndexRecord {
  const high = from.readUInt32BE(at + 8);
  return {
    combinedEnd: from.readUInt32BE(at) * HIGH + from.readUInt32BE(at + 4),
    stream: high & STDERR_BIT ? 'stderr' : 'stdout',
    streamEnd: (high & ~STDERR_BIT) * HIGH + from.readUInt32BE(at + 12),
  };
}

/** The end of `stream` at the boundary after `record`. */
export function streamEndAt(record: IndexRecord, stream: OutputStream): number {
  return record.stream === stream ? record.streamEnd : record.combinedEnd - record.streamEnd;
}

/** Both stream ends after `record` (zeros before the first record). */
export function endsAt(record: IndexRecord | undefined): OutputBytes {
  if (!record) return { stdout: 0, stderr: 0 };
  return { stdout: streamEndAt(record, 'stdout'), stderr: streamEndAt(record, 'stderr') };
}

/** Whether `record` can follow `previous`: it changes the other stream, grows, and keeps the other end. */
export function followsOn(record: IndexRecord, previous: IndexRecord | undefined): boolean {
  if (!previous) return record.streamEnd > 0 && record.combinedEnd === record.streamEnd;
  return (
    record.stream !== previous.stream &&
    record.combinedEnd > previous.combinedEnd &&
    record.combinedEnd - record.streamEnd === previous.streamEnd
  );
}

/** The last records of an index: how many there are and the last two of them. */
export interface IndexTail {
  /** The file's size in bytes when read: more than `count` records when a partial or torn one follows. */
  readonly bytes: number;
  readonly count: number;
  readonly last: IndexRecord | undefined;
  readonly previous: IndexRecord | undefined;
}

/**
 * Reads the tail of an open index, checking that the last record fits its predecessor.
 * The writer extends the last record in place, and a read racing that 16-byte write can see
 * half of it: such a read is retried. A last record that stays inconsistent was torn by a crash;
 * it is left out (the writer overwrites it; the bytes it covered are indexed again on the next
 * observation, in the same position).
 */
export async function readTail(file: IndexFile, attempts = 5): Promise<IndexTail> {
  const buffer = Buffer.alloc(2 * RECORD_BYTES);
  for (let attempt = 1; ; attempt++) {
    const bytes = (await file.stat()).size;
    const count = Math.floor(bytes / RECORD_BYTES);
    if (count === 0) return { bytes, count, last: undefined, previous: undefined };
    const first = Math.max(0, count - 2);
    const want = (count - first) * RECORD_BYTES;
    const { bytesRead } = await file.read(buffer, 0, want, first * RECORD_BYTES);
    const previous = count >= 2 ? decodeRecord(buffer, 0) : undefined;
    const last = decodeRecord(buffer, count >= 2 ? RECORD_BYTES : 0);
    if (bytesRead === want && followsOn(last, previous)) return { bytes, count, last, previous };
    if (attempt >= attempts) {
      const before = count >= 3 ? await readRecord(file, count - 3) : undefined;
      return { bytes, count: count - 1, last: previous, previous: before };
    }
  }
}

export async function readRecord(file: IndexFile, index: number): Promise<IndexRecord> {
  const buffer = Buffer.alloc(RECORD_BYTES);
  const { bytesRead } = await file.read(buffer, 0, RECORD_BYTES, index * RECORD_BYTES);
  if (bytesRead < RECORD_BYTES) throw new Error(`combined.idx has no record ${index}`);
  return decodeRecord(buffer, 0);
}
