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
