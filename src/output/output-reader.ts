import { ValidationError } from '../core/errors.ts';
import type { OutputStream } from '../core/job.ts';
import { CombinedIndex } from './combined-index.ts';
import { assertCursor, OUTPUT_SELECTORS, pastEndError } from './cursor.ts';
import { dropBefore } from './drop-before.ts';
import { ASYNC_FILES, type FileAccess, type ReadableFile } from './file-access.ts';
import { isNotFound, outputPaths, readExactly } from './output-files.ts';
import type { OutputEvent, OutputRead, OutputSelector, OutputSpan, OutputSpans } from './output-types.ts';
import type { KeptWindow } from './retention.ts';

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

/** Where one event of a read lies: a stretch of a stream's file, or a `truncated` marker. */
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
      const reader = new OutputReader(dir, selector, undefined, size, options);
      reader.#files.set(selector, file);
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
      const data = await readExactly(piece.file, piece.length, piece.position, page?.subarray(filled));
      filled += piece.length;
      events.push({ type: 'data', stream: piece.stream, data, cursor: piece.cursor });
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
    const keptStart = Math.min(kept[stream], end);
    if (position < keptStart) {
      pieces.push({ type: 'truncated', stream, skippedBytes: keptStart - position, cursor: keptStart });
      position = keptStart;
    }
    const length = Math.min(end - position, limit);
    if (file && length > 0) {
      pieces.push({ type: 'data', stream, file, position, length, cursor: position + length });
    }
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
      const length = Math.min(entry.combinedEnd - position, remaining);
      const file = await this.#fileOf(entry.stream);
      const at = entry.streamStart + (position - entry.combinedStart);
      position += length;
      remaining -= length;
      pieces.push({ type: 'data', stream: entry.stream, file, position: at, length, cursor: position });
    }
    return { kept, pieces, end };
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
    }
    return file;
  }
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
