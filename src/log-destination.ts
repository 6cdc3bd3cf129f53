import { write as writeFd } from 'node:fs';
import { promisify } from 'node:util';
import { type Clock, systemClock } from './core/clock.ts';

const writeToFd = promisify(writeFd);

/** What the server logs to: a file descriptor (stdout, stderr, a log file) or any writable stream. */
export type LogTarget = number | NodeJS.WritableStream;

/** Why log lines were dropped, told once writing works again. */
export interface DroppedLines {
  /** Lines lost since the last successful write. */
  readonly lines: number;
  /** The error that lost them (`ENOSPC: no space left on device, write`), or the backlog limit. */
  readonly cause: string;
}

export interface LogDestinationOptions {
  /** Most bytes of log lines held while earlier ones are being written; more are dropped. Default 1 MiB. */
  readonly maxPendingBytes?: number;
  /**
   * Called after the first successful write that follows dropped lines, so that the count can
   * be logged. A line logged from here that cannot be written is counted in turn, never retried.
   */
  readonly onRecovered?: (dropped: DroppedLines) => void;
  /** For the short wait after EAGAIN (a non-blocking pipe that is full). Default: the system clock. */
  readonly clock?: Clock;
}

const DEFAULT_MAX_PENDING_BYTES = 1024 * 1024;
/** Streams given an error listener already (a stream may serve one server after another). */
const guarded = new WeakSet<NodeJS.WritableStream>();
const EAGAIN_WAIT_MS = 10;

/**
 * Where pino writes the server's log lines, made so that logging can never block or stall the
 * server. pino's own destination writes synchronously on exit and retries a failed write every
 * 100 ms forever: with the log on a full disk the event loop stopped (no `/healthz`, SIGTERM
 * ignored). Here every write is asynchronous, one at a time, with the lines that came meanwhile
 * batched behind it; a write that fails (ENOSPC, EIO, EPIPE...) drops its lines and counts them,
 * as does a backlog beyond `maxPendingBytes`. Nothing is retried on a timer: the next line tries
 * again, and once one is written `onRecovered` reports how many were lost and why. A line cut
 * short by a full disk is ended with a newline before anything else is written, so that every
 * line that follows reads whole.
 *
 * pino calls `write` with one complete line at a time and `flush(cb)` from `logger.flush`.
 */
export class LogDestination {
  readonly #target: LogTarget;
  readonly #maxPendingBytes: number;
  readonly #onRecovered: (dropped: DroppedLines) => void;
  readonly #clock: Clock;
  #pending: string[] = [];
  #pendingBytes = 0;
  #writing = false;
  #droppedLines = 0;
  #dropCause = '';
  /** The last write ended part way through a line. */
  #torn = false;
  /** The message of the last failed write: the cause of the lines it dropped. */
  #lastError = '';
  #flushed: (() => void)[] = [];
  #total = { written: 0, dropped: 0 };

  constructor(target: LogTarget, options: LogDestinationOptions = {}) {
    this.#target = target;
    this.#maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#onRecovered = options.onRecovered ?? (() => {});
    this.#clock = options.clock ?? systemClock;
    // A stream's own error event would otherwise crash the process: its failed writes are counted.
    if (typeof target !== 'number' && !guarded.has(target)) {
      guarded.add(target);
      target.on('error', () => {});
    }
  }

  /** Lines written and lines dropped since the start (diagnostics and tests). */
  get counts(): { readonly written: number; readonly dropped: number } {
    return { ...this.#total };
  }

  write(line: string): boolean {
    const bytes = Buffer.byteLength(line);
    if (this.#pendingBytes + bytes > this.#maxPendingBytes) {
      this.#drop(1, `more than ${this.#maxPendingBytes} bytes of log lines were waiting to be written`);
      return true;
    }
    this.#pending.push(line);
    this.#pendingBytes += bytes;
    if (!this.#writing) void this.#drain();
    return true;
  }

  /** Calls `cb` once every line given so far is written or dropped. */
  flush(cb: (err?: Error) => void = () => {}): void {
    if (!this.#writing && this.#pending.length === 0) {
      cb();
      return;
    }
    this.#flushed.push(() => cb());
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#pending.length > 0) {
      const lines = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      const prefix = this.#torn ? '\n' : '';
      const chunk = Buffer.from(prefix + lines.join(''));
      const written = await this.#writeAll(chunk);
      if (written === chunk.length) {
        this.#torn = false;
        this.#total.written += lines.length;
        this.#recovered();
      } else {
        // Lines not wholly written are lost; a line begun and not ended must be ended first.
        const unwritten = chunk.subarray(Math.max(written, prefix.length));
        if (written > 0) this.#torn = chunk[written - 1] !== 0x0a;
        const whole = lines.length - countLines(unwritten);
        this.#total.written += whole;
        this.#drop(lines.length - whole, this.#lastError);
      }
    }
    this.#writing = false;
    for (const done of this.#flushed.splice(0)) done();
  }

  /** Writes as much of `chunk` as the target takes; returns how many bytes that was. */
  async #writeAll(chunk: Buffer): Promise<number> {
    let written = 0;
    while (written < chunk.length) {
      try {
        written += await this.#writeOnce(chunk.subarray(written));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          await new Promise<void>((resolve) => this.#clock.setTimer(resolve, EAGAIN_WAIT_MS));
          continue;
        }
        this.#lastError = err instanceof Error ? err.message : String(err);
        return written;
      }
    }
    return written;
  }

  async #writeOnce(chunk: Buffer): Promise<number> {
    const target = this.#target;
    if (typeof target === 'number') return (await writeToFd(target, chunk)).bytesWritten;
    await new Promise<void>((resolve, reject) => {
      target.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
    return chunk.length;
  }

  #drop(lines: number, cause: string): void {
    if (lines <= 0) return;
    this.#droppedLines += lines;
    this.#total.dropped += lines;
    this.#dropCause = cause;
  }

  #recovered(): void {
    if (this.#droppedLines === 0) return;
    const dropped = { lines: this.#droppedLines, cause: this.#dropCause };
    this.#droppedLines = 0;
    this.#onRecovered(dropped);
  }
}

function countLines(chunk: Buffer): number {
  let n = 0;
  for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) n++;
  // A last line without its newline (never the case for pino's lines) still counts.
  return chunk.length > 0 && chunk[chunk.length - 1] !== 0x0a ? n + 1 : n;
}
