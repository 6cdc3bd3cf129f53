import type { OutputBytes, OutputStream } from '../core/job.ts';
import { ASYNC_FILES, type FileAccess, type ReadableFile } from './file-access.ts';
import {
  decodeRecord,
  endsAt,
  type IndexRecord,
  RECORD_BYTES,
  readTail,
  streamEndAt,
} from './index-record.ts';
import { isNotFound, outputPaths } from './output-files.ts';

/** One stretch of the combined view: combined bytes [combinedStart, combinedEnd) are `stream` bytes [streamStart, streamEnd). */
export interface IndexEntry {
  readonly stream: OutputStream;
  readonly combinedStart: number;
  readonly combinedEnd: number;
  readonly streamStart: number;
  readonly streamEnd: number;
}

// Records are read a block at a time: sequential scans and the last steps of a search stay in one block.
const BLOCK_RECORDS = 256;

/**
 * A read-only snapshot of a job's `combined.idx`: the records present when it was opened.
 * Records before the last never change; the last one is read once, checked, and kept, since the
 * monitor may extend it in place while this snapshot is open. Searches from the end map a combined
 * position or a stream offset to its record in O(log n) reads. Close it after each read.
 */
export class CombinedIndex {
  readonly count: number;
  private readonly file: ReadableFile | undefined;
  private readonly tail: IndexRecord | undefined;
  private block: { first: number; data: Buffer } | undefined;

  private constructor(file: ReadableFile | undefined, count: number, tail: IndexRecord | undefined) {
    this.file = file;
    this.count = count;
    this.tail = tail;
  }

  /** Opens the job's index; a job without one (nothing observed yet) has an empty index. */
  static async open(dir: string, files: FileAccess = ASYNC_FILES): Promise<CombinedIndex> {
    let file: ReadableFile;
    try {
      file = await files.open(outputPaths(dir).combinedIndex);
    } catch (err) {
      if (isNotFound(err)) return new CombinedIndex(undefined, 0, undefined);
      throw err;
    }
    try {
      const tail = await readTail(file);
      return new CombinedIndex(file, tail.count, tail.last);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /** The end of the combined view: every byte observed so far. */
  get end(): number {
    return this.tail?.combinedEnd ?? 0;
  }

  /** How far each stream is covered by the combined view. */
  get observed(): OutputBytes {
    return endsAt(this.tail);
  }

  async close(): Promise<void> {
    await this.file?.close();
  }

  async record(index: number): Promise<IndexRecord> {
    if (index < 0 || index >= this.count) throw new RangeError(`combined.idx has no record ${index}`);
    if (index === this.count - 1 && this.tail) return this.tail;
    let block = this.block;
    if (!block || index < block.first || index >= block.first + block.data.length / RECORD_BYTES) {
      const first = index - (index % BLOCK_RECORDS);
      const records = Math.min(BLOCK_RECORDS, this.count - 1 - first);
      const data = Buffer.alloc(records * RECORD_BYTES);
      const { bytesRead } = await this.file!.read(data, 0, data.length, first * RECORD_BYTES);
      if (bytesRead < data.length) throw new Error('combined.idx is shorter than when it was opened');
      block = { first, data };
      this.block = block;
    }
    return decodeRecord(block.data, (index - block.first) * RECORD_BYTES);
  }

  async entry(index: number): Promise<IndexEntry> {
    const record = await this.record(index);
    const combinedStart = index === 0 ? 0 : (await this.record(index - 1)).combinedEnd;
    const length = record.combinedEnd - combinedStart;
    return {
      stream: record.stream,
      combinedStart,
      combinedEnd: record.combinedEnd,
      streamStart: record.streamEnd - length,
      streamEnd: record.streamEnd,
    };
  }

  /** The index of the record holding combined byte `position` (which must be < `end`). */
  async locate(position: number): Promise<number> {
    return this.firstWhere((record) => record.combinedEnd > position);
  }

  /**
   * The combined position just after byte `offset - 1` of `stream`: every byte of `stream`
   * past it in the combined view is at or after `offset`. 0 for offset 0; `end` when that
   * byte is not covered by this snapshot.
   */
  async positionAfter(stream: OutputStream, offset: number): Promise<number> {
    if (offset <= 0) return 0;
    const index = await this.firstWhere((record) => streamEndAt(record, stream) >= offset);
    if (index >= this.count) return this.end;
    // The stream's end first reaches `offset` at this record, so the record is of that stream.
    const record = await this.record(index);
    return record.combinedEnd - (record.streamEnd - offset);
  }

  /**
   * The first index whose record satisfies a predicate that is monotonic over the index, or
   * `count`. Searched from the end, in steps that double (1, 2, 4, ... records back) until one
   * fails, then by halves between the last two probes: a record n from the end costs about
   * 2 log2(n) reads. The index gains a record each time the job switches streams, and most reads
   * start near its end (a follower at the live tail starts where its last read ended, a record or
   * two back), which this finds among the last few records, in the block beside the in-memory
   * tail, where a search by halves of the whole index read log2(count) records spread over the
   * file, each an await and often a block read. A read far from the end (a catch-up from the
   * start) costs up to twice the reads it did.
   */
  private async firstWhere(test: (record: IndexRecord) => boolean): Promise<number> {
    // Every index from `high` on satisfies the test; none below `low` does.
    let low = 0;
    let high = this.count;
    for (let back = 1; high > low; back *= 2) {
      const probe = Math.max(this.count - back, low);
      if (!test(await this.record(probe))) {
        low = probe + 1;
        break;
      }
      high = probe;
    }
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (test(await this.record(middle))) high = middle;
      else low = middle + 1;
    }
    return low;
  }
}
