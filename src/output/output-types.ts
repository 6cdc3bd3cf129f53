import type { OutputStream } from '../core/job.ts';

/**
 * Which view of a job's output to read.
 * - `stdout`, `stderr`: one stream, exact; its cursor is a byte offset in that stream.
 * - `all`: both streams interleaved in the order the server observed them; its cursor is a
 *   position in that combined byte sequence (the sum of the two stream offsets at that point).
 */
export type OutputSelector = OutputStream | 'all';

/**
 * What a reader or follower receives, in view order. `cursor` is the position in the selected
 * view just after the event: resuming from it shows no gap and no duplicate.
 * - `data`: bytes of one stream, exactly as written.
 * - `truncated`: `skippedBytes` of the view were dropped by retention; the view resumes at the
 *   start of the kept window. `stream` names the stream whose bytes were dropped.
 */
export type OutputEvent =
  | { type: 'data'; stream: OutputStream; data: Buffer; cursor: number }
  | { type: 'truncated'; stream: OutputStream; skippedBytes: number; cursor: number };

/**
 * A stretch of a view left where it lies (`OutputReader.spans`), for a consumer that has the
 * kernel copy it (sendfile): a `data` span is `length` bytes of one stream at `position` in its
 * file, open as `fd` (the reader's own descriptor: valid while the reader is open, never closed by
 * the consumer); `truncated` is as in `OutputEvent`. `cursor` is as in `OutputEvent`.
 */
export type OutputSpan =
  | { type: 'data'; stream: OutputStream; fd: number; position: number; length: number; cursor: number }
  | Extract<OutputEvent, { type: 'truncated' }>;

/** One read of a view as spans: like `OutputRead`. */
export interface OutputSpans {
  spans: OutputSpan[];
  cursor: number;
  end: number;
}

/** One read of a view. */
export interface OutputRead {
  events: OutputEvent[];
  /** Where the next read continues (the last event's cursor, or the cursor asked for). */
  cursor: number;
  /** The current end of the view: for `all`, the end of what has been observed. */
  end: number;
}

/** What the monitor tells a job's followers: `output:grow` after it observed new bytes; `output:finish` once, at the end. */
export type OutputNotice = 'output:grow' | 'output:finish';
export type OutputListener = (notice: OutputNotice) => void;
