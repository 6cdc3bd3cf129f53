import { writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { TerminalSanitizer } from './terminal-sanitizer.ts';

/** A stream of this process on a file descriptor (process.stdout, process.stderr). */
type FdStream = Writable & { isTTY?: boolean; fd?: unknown };

export interface OutputWriterOptions {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /** Print escape sequences as the job wrote them, even to a terminal. */
  readonly raw: boolean;
  /** Write both job streams to `stdout` (the user asked for one stream only). */
  readonly allToStdout: boolean;
}

/**
 * Writes a job's output where the user sees it: the job's stdout to ours and its stderr to
 * ours (or everything to stdout when one stream was asked for). To a terminal, each job stream
 * goes through its own `TerminalSanitizer` unless `raw`; to anything else, bytes pass exactly.
 */
export class OutputWriter {
  private readonly options: OutputWriterOptions;
  private readonly sanitizers = new Map<'stdout' | 'stderr', TerminalSanitizer>();

  constructor(options: OutputWriterOptions) {
    this.options = options;
  }

  /**
   * Whether `write` is done with its data when it returns, keeping no reference: both targets are
   * this process's stdout or stderr, written with `writeSync` (a sanitizer, for a terminal, makes
   * a new buffer of its own). A reader may then hand it views of a reused buffer (`borrowData`).
   */
  get writesAtOnce(): boolean {
    return (
      descriptorOf(this.target('stdout')) !== undefined && descriptorOf(this.target('stderr')) !== undefined
    );
  }

  async write(stream: 'stdout' | 'stderr', data: Buffer): Promise<void> {
    const target = this.target(stream);
    const bytes = this.sanitizer(stream, target)?.write(data) ?? data;
    if (bytes.length === 0) return;
    const fd = descriptorOf(target);
    if (fd === undefined || bytes !== data) {
      await writeTo(target, bytes);
      return;
    }
    const written = writeAtOnce(fd, bytes);
    // The rest goes the stream's way, as a copy: the caller may reuse `data` once this returns.
    if (written < bytes.length) await writeTo(target, Buffer.from(bytes.subarray(written)));
  }

  /** Flushes what a sanitizer held back (an incomplete UTF-8 lead byte). */
  async end(): Promise<void> {
    for (const [stream, sanitizer] of this.sanitizers) {
      const rest = sanitizer.end();
      if (rest.length > 0) await writeTo(this.target(stream), rest);
    }
  }

  private target(stream: 'stdout' | 'stderr'): FdStream {
    return stream === 'stdout' || this.options.allToStdout ? this.options.stdout : this.options.stderr;
  }

  private sanitizer(stream: 'stdout' | 'stderr', target: { isTTY?: boolean }): TerminalSanitizer | null {
    if (this.options.raw || target.isTTY !== true) return null;
    let sanitizer = this.sanitizers.get(stream);
    if (sanitizer === undefined) {
      sanitizer = new TerminalSanitizer();
      this.sanitizers.set(stream, sanitizer);
    }
    return sanitizer;
  }
}

/**
 * The descriptor of this process's stdout or stderr, which Node writes synchronously on Linux
 * (files, pipes and terminals alike), so that a `writeSync` beside it keeps the order. Any other
 * stream (a test's, a file stream with a queue of its own) is written its own way.
 */
function descriptorOf(target: FdStream): number | undefined {
  if (process.platform !== 'linux' || (target !== process.stdout && target !== process.stderr))
    return undefined;
  return typeof target.fd === 'number' ? target.fd : undefined;
}

/**
 * Writes `data` to `fd` at once; the bytes written, fewer when the write failed: the descriptor
 * would block (a non-blocking pipe shared with another process), or the reader went away (EPIPE).
 * The caller writes the rest the stream's way, where the CLI handles a closed pipe (quietly).
 */
function writeAtOnce(fd: number, data: Buffer): number {
  let written = 0;
  while (written < data.length) {
    try {
      written += writeSync(fd, data, written);
    } catch {
      break;
    }
  }
  return written;
}

/** Writes and waits for the stream to accept more, so a slow reader slows us instead of our memory growing. */
export function writeTo(target: Writable, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    target.write(data, (error) => (error ? reject(error) : resolve()));
  });
}
