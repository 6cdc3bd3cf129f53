import type { Writable } from 'node:stream';
import { TerminalSanitizer } from './terminal-sanitizer.ts';

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

  async write(stream: 'stdout' | 'stderr', data: Buffer): Promise<void> {
    const target = this.target(stream);
    const bytes = this.sanitizer(stream, target)?.write(data) ?? data;
    if (bytes.length > 0) await writeTo(target, bytes);
  }

  /** Flushes what a sanitizer held back (an incomplete UTF-8 lead byte). */
  async end(): Promise<void> {
    for (const [stream, sanitizer] of this.sanitizers) {
      const rest = sanitizer.end();
      if (rest.length > 0) await writeTo(this.target(stream), rest);
    }
  }

  private target(stream: 'stdout' | 'stderr'): Writable & { isTTY?: boolean } {
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

/** Writes and waits for the stream to accept more, so a slow reader slows us instead of our memory growing. */
export function writeTo(target: Writable, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    target.write(data, (error) => (error ? reject(error) : resolve()));
  });
}
