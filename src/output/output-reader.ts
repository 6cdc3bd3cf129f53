import { ValidationError } from '../core/errors.ts';
import type { OutputStream } from '../core/job.ts';
import { CombinedIndex } from './combined-index.ts';
import { assertCursor, OUTPUT_SELECTORS, pastEndError } from './cursor.ts';
import { dropBefore } from './drop-before.ts';
import { ASYNC_FILES, type FileAccess, type ReadableFile } from './file-access.ts';
import { isNotFound, outputPaths } from './output-files.ts';
import type { OutputEvent, OutputRead, OutputSelector, OutputSpan, OutputSpans } from './output-types.ts';
import { fileStartOf, type KeptWindow } from './retention.ts';

export interface ReadOutputOptions {
  readonly selector: OutputSelector;
  /** Position in the selected view to read from; past the view's current end is a `CursorError`. */
  readonly cursor: number;
  /** At most this many bytes of data are returned. */
  readonly limitBytes: number;
}

export type { OutputRead };

export interface ReaderOptions {
  /** How files are opened and read (default: `ASYNC_FILES`). */
  readonly files?: FileAccess;
  /**
   * The job has ended and its monitor has sealed it: its kept window no longer moves, so it is
   * read once, not after every page (a page of a finished job costs one read, not three).
   */
  readonly sealed?: boolean;
}

// Bounds the work of one read of the combined view when it alternates in tiny stretches.
const MAX_EVENTS = 1024;

/**
 * Where one event of a read lies: a stretch of a stream's file, or a `truncated` marker. A data
 * piece's `position` is in the file, which starts at the stream's `fileStart` (`KeptWindow`).
 */
type Piece =
  | {
      type: 'data';
      stream: OutputStream;
      file: ReadableFile;
      /** Where the bytes start in the stream's file. */
      position: number;
      length: number;
      cursor: number;
    }
  | Extract<OutputEvent, { type: 'truncated' }>;

/** A read planned against the kept window as it was then, up to the view's `end`. */
interface Plan {
  readonly kept: KeptWindow;
  readonly pieces: Piece[];
  readonly end: number;
}

/**
 * Reads one page of a view of a job's output from a cursor. Files are opened for this read (by
 * `files`: the held files of a followed job give their own descriptors, which stay open) and
 * closed before it returns. A cursor before the kept window gets one `truncated` event, then the
 * kept bytes.
 */
export async function readOutput(
  dir: string,
  options: ReadOutputOptions,
  files: FileAccess = ASYNC_FILES,
): Promise<OutputRead> {
  const { selector, cursor, limitBytes } = options;
  checkSelector(selector);
  assertCursor(cursor);
  checkLimit(limitBytes);
  const reader = await OutputReader.open(dir, selector, { files });
  try {
    return await reader.read(cursor, limitBytes);
  } finally {
    await reader.close();
  }
}

/**
 * Pages through one view of a job's output with its files held open: a catch-up read of a long
 * output opens them once, not once per page. The view's end is fixed when the reader is opened
 * (the index snapshot, or the stream's size then); bytes written later need a new reader. The
 * kept window is read again on every page, so retention stays exact while the reader is open
 * (a sealed job's only once). Close it when done: it holds up to three descriptors.
 */
export class OutputReader {
  readonly #dir: string;
  readonly #selector: OutputSelector;
  readonly #index: CombinedIndex | undefined;
  readonly #access: FileAccess;
  readonly #files = new Map<OutputStream, ReadableFile | undefined>();
  /** Each stream file's size when it was opened: what the job's writes had reached then. */
  readonly #fileSizes = new Map<OutputStream, number>();
  readonly #streamEnd: number;
  readonly #sealed: boolean;
  // The kept window as last read. It only moves forward, so the one read after a page serves as
  // the one before the next: a punch in between is caught by the check after that read.
  #kept: KeptWindow | undefined;

  private constructor(
    dir: string,
    selector: OutputSelector,
    index: CombinedIndex | undefined,
    streamEnd: number,
    options: ReaderOptions,
  ) {
    this.#access = options.files ?? ASYNC_FILES;
    this.#sealed = options.sealed ?? false;
    this.#dir = dir;
    this.#selector = selector;
    this.#index = index;
    this.#streamEnd = streamEnd;
  }

  static async open(
    dir: string,
    selector: OutputSelector,
    options: ReaderOptions = {},
  ): Promise<OutputReader> {
    checkSelector(selector);
    const files = options.files ?? ASYNC_FILES;
    if (selector === 'all') {
      return new OutputReader(dir, selector, await CombinedIndex.open(dir, files), 0, options);
    }
    const file = await openIfExists(files, outputPaths(dir)[selector]);
    try {
      const size = file ? (await file.stat()).size : 0;
      // Read now, not at the first page: the view's end is a stream offset, the file's size past
      // where the file starts in the stream (a job that truncated its file restarted it there).
      const kept = await files.keptWindow(dir);
      const reader = new OutputReader(dir, selector, undefined, size + fileStartOf(kept, selector), options);
      reader.#kept = kept;
      reader.#files.set(selector, file);
      reader.#fileSizes.set(selector, size);
      return reader;
    } catch (err) {
      await file?.close();
      throw err;
    }
  }

  /** The end of the view as of opening. */
  get end(): number {
    return this.#index ? this.#index.end : this.#streamEnd;
  }

  /** Whether the reader was opened sealed (a finished job): its kept window no longer moves. */
  get sealed(): boolean {
    return this.#sealed;
  }

  /**
   * Reads up to `limitBytes` of data from `cursor`; past `end` is a `CursorError`. Given `page`
   * (at least `limitBytes` long), the data events are views of it, not new buffers: the caller
   * owns the page and must not reuse it while it uses those events.
   */
  async read(cursor: number, limitBytes: number, page?: Buffer): Promise<OutputRead> {
    assertCursor(cursor);
    checkLimit(limitBytes);
    if (page && page.length < limitBytes) {
      throw new RangeError(`A page of ${page.length} bytes cannot hold ${limitBytes}`);
    }
    const { kept, pieces, end } = await this.#plan(cursor, limitBytes);
    let events: OutputEvent[] = [];
    let filled = 0;
    for (const piece of pieces) {
      if (piece.type === 'truncated') {
        events.push(piece);
        continue;
      }
      const into = page ? page.subarray(filled, filled + piece.length) : Buffer.allocUnsafe(piece.length);
      const got = await readUpTo(piece.file, into, piece.position);
      filled += got;
      const start = piece.cursor - piece.length;
      if (got > 0)
        events.push({ type: 'data', stream: piece.stream, data: into.subarray(0, got), cursor: start + got });
      // The file ended early: the job truncated it since this reader looked (its monitor records
      // where it restarts). What it no longer holds was lost: said so, never an error.
      if (got < piece.length) {
        events.push({
          type: 'truncated',
          stream: piece.stream,
          skippedBytes: piece.length - got,
          cursor: piece.cursor,
        });
      }
    }
    // A punch may have raced this read: whatever now lies before the kept window is not data.
    const after = await this.#keptAfter(kept);
    this.#kept = after;
    if (after.stdout > kept.stdout || after.stderr > kept.stderr) {
      const moved = this.#index
        ? await keptStartOf(this.#index, after)
        : { start: after[this.#selector as OutputStream], stream: this.#selector as OutputStream };
      events = dropBefore(events, cursor, moved.start, moved.stream);
    }
    return { events, cursor: events.at(-1)?.cursor ?? cursor, end };
  }

  /**
   * Like `read`, but leaves the bytes where they lie: each data span names the open file they are
   * in, for a consumer that has the kernel copy them (sendfile). Only a sealed reader gives spans:
   * a live job's kept window may move while the bytes are copied, and bytes handed to the kernel
   * cannot be taken back as `read` takes back a raced page. The spans' descriptors are the
   * reader's own: valid until it is closed, and never to be closed by the consumer.
   */
  async spans(cursor: number, limitBytes: number): Promise<OutputSpans> {
    if (!this.#sealed) {
      throw new Error("Only a sealed reader (a finished job's output) gives spans");
    }
    assertCursor(cursor);
    checkLimit(limitBytes);
    const { pieces, end } = await this.#plan(cursor, limitBytes);
    const spans = pieces.map(
      (piece): OutputSpan =>
        piece.type === 'truncated'
          ? piece
          : {
              type: 'data',
              stream: piece.stream,
              fd: piece.file.fd,
              position: piece.position,
              length: piece.length,
              cursor: piece.cursor,
            },
    );
    return { spans, cursor: spans.at(-1)?.cursor ?? cursor, end };
  }

  async close(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files.clear();
    await Promise.all([this.#index?.close(), ...files.map((file) => file?.close())]);
  }

  /** Where the bytes of a read lie, in view order, with the kept window it was planned against. */
  #plan(cursor: number, limit: number): Promise<Plan> {
    return this.#selector === 'all'
      ? this.#planCombined(this.#index!, cursor, limit)
      : this.#planStream(this.#selector, cursor, limit);
  }

  async #planStream(stream: OutputStream, cursor: number, limit: number): Promise<Plan> {
    const end = this.#streamEnd;
    if (cursor > end) throw pastEndError(stream, cursor, end);
    const kept = this.#kept ?? (await this.#access.keptWindow(this.#dir));
    const file = this.#files.get(stream);
    const pieces: Piece[] = [];
    let position = cursor;
    const keptStart = Math.min(Math.max(kept[stream], fileStartOf(kept, stream)), end);
    if (position < keptStart) {
      pieces.push({ type: 'truncated', stream, skippedBytes: keptStart - position, cursor: keptStart });
      position = keptStart;
    }
    if (file && position < end) this.#pushData(pieces, stream, file, kept, position, end - position, limit);
    return { kept, pieces, end };
  }

  async #planCombined(index: CombinedIndex, cursor: number, limit: number): Promise<Plan> {
    const end = index.end;
    if (cursor > end) throw pastEndError('all', cursor, end);
    const kept = this.#kept ?? (await this.#access.keptWindow(this.#dir));
    const pieces: Piece[] = [];
    let position = cursor;
    const window = await keptStartOf(index, kept);
    if (position < window.start) {
      const skippedBytes = window.start - position;
      pieces.push({ type: 'truncated', stream: window.stream, skippedBytes, cursor: window.start });
      position = window.start;
    }
    let remaining = limit;
    let next = position < end ? await index.locate(position) : index.count;
    while (next < index.count && remaining > 0 && pieces.length < MAX_EVENTS) {
      const entry = await index.entry(next++);
      const file = await this.#fileOf(entry.stream);
      const at = entry.streamStart + (position - entry.combinedStart);
      const planned = this.#pushData(
        pieces,
        entry.stream,
        file,
        kept,
        at,
        entry.combinedEnd - position,
        remaining,
        position,
      );
      position = planned.cursor;
      remaining -= planned.data;
    }
    return { kept, pieces, end };
  }

  /**
   * Plans up to `limit` bytes of the `available` ones of `stream` from stream offset `offset` (at
   * `cursor` in the view, by default the same), clamped to what its file held when opened: past
   * that, the job truncated its file after they were written, and the rest of the stretch is a
   * `truncated` marker, not a read that fails. In the combined view a file that holds less than the
   * index covers of it was truncated since (and its monitor has not recorded it yet:
   * `KeptWindow.fileStart`): what it holds now was written after the truncation, not the bytes the
   * index means, so none of them is served there. Lost bytes cost the page nothing. Resolves with
   * the view's cursor after what it planned and how many bytes of data that is.
   */
  #pushData(
    pieces: Piece[],
    stream: OutputStream,
    file: ReadableFile,
    kept: KeptWindow,
    offset: number,
    available: number,
    limit: number,
    cursor = offset,
  ): { cursor: number; data: number } {
    const position = offset - fileStartOf(kept, stream);
    const size = this.#fileSizes.get(stream) ?? 0;
    const covered = this.#index ? this.#index.observed[stream] - fileStartOf(kept, stream) : 0;
    // Before the file's start is before the kept window too, once read with the same record.
    const length = Math.min(available, limit);
    const held = position < 0 || size < covered ? 0 : Math.max(0, Math.min(length, size - position));
    if (held > 0) pieces.push({ type: 'data', stream, file, position, length: held, cursor: cursor + held });
    if (held === length) return { cursor: cursor + held, data: held };
    pushLost(pieces, stream, available - held, cursor + available);
    return { cursor: cursor + available, data: held };
  }

  /** The kept window after a read: as before it for a sealed job, whose window no longer moves. */
  #keptAfter(before: KeptWindow): Promise<KeptWindow> {
    return this.#sealed ? Promise.resolve(before) : this.#access.keptWindow(this.#dir);
  }

  /** A stream's file, opened the first time the combined view reaches it and kept open. */
  async #fileOf(stream: OutputStream): Promise<ReadableFile> {
    let file = this.#files.get(stream);
    if (!file) {
      file = await this.#access.open(outputPaths(this.#dir)[stream]);
      this.#files.set(stream, file);
      try {
        this.#fileSizes.set(stream, (await file.stat()).size);
      } catch (err) {
        this.#files.delete(stream);
        await file.close();
        throw err;
      }
    }
    return file;
  }
}

/** Adds a `truncated` marker, merged into one of the same stream just before it. */
function pushLost(pieces: Piece[], stream: OutputStream, skippedBytes: number, cursor: number): void {
  const last = pieces.at(-1);
  if (last?.type === 'truncated' && last.stream === stream) {
    pieces[pieces.length - 1] = { ...last, skippedBytes: last.skippedBytes + skippedBytes, cursor };
  } else {
    pieces.push({ type: 'truncated', stream, skippedBytes, cursor });
  }
}

/** Reads into all of `into` from `position`, or as much as the file holds there; resolves with how much. */
async function readUpTo(file: ReadableFile, into: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < into.length) {
    const { bytesRead } = await file.read(into, filled, into.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

function checkSelector(selector: OutputSelector): void {
  if (!OUTPUT_SELECTORS.includes(selector)) {
    throw ValidationError.expected('selector', 'one of stdout, stderr, all', selector);
  }
}

function checkLimit(limitBytes: number): void {
  if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) {
    throw ValidationError.expected('limitBytes', 'a positive integer', limitBytes);
  }
}

/**
 * Where the combined view's kept window starts: the first position after which every byte of
 * both streams is still kept, so the view stays one contiguous run after a single marker.
 * Older bytes of the less-dropped stream before it stay readable through that stream's view.
 */
async function keptStartOf(
  index: CombinedIndex,
  kept: KeptWindow,
): Promise<{ start: number; stream: OutputStream }> {
  const stdout = await index.positionAfter('stdout', kept.stdout);
  const stderr = await index.positionAfter('stderr', kept.stderr);
  return stdout >= stderr ? { start: stdout, stream: 'stdout' } : { start: stderr, stream: 'stderr' };
}

async function openIfExists(files: FileAccess, path: string): Promise<ReadableFile | undefined> {
  try {
    return await files.open(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
