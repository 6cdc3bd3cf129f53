import type { OutputMonitor } from './output-monitor.ts';
import { OutputReader } from './output-reader.ts';
import type { OutputEvent, OutputSelector } from './output-types.ts';

export interface FollowOutputOptions {
  readonly selector: OutputSelector;
  /** Where to start in the selected view; past its current end is a `CursorError`. */
  readonly cursor: number;
  /** Ends the follow (without error) and releases its listeners at once, even between batches. */
  readonly signal?: AbortSignal;
  /** The most bytes of data read ahead into one batch; the follower's whole buffer (default 64 KiB). */
  readonly batchBytes?: number;
}

export const DEFAULT_BATCH_BYTES = 64 * 1024;

/**
 * Follows a job's output from a cursor: yields batches of events as they reach disk, each read
 * when the consumer asks for the next one, so a slow consumer only slows itself and holds at
 * most one batch. When caught up it waits for the monitor's next notice (no polling, no timers).
 * Followers at the same position share one read per growth (`OutputMonitor.read`).
 * It ends once the job is finished (the monitor sealed it, or does not watch it at all) and
 * every byte up to the final end was delivered. An aborted follow ends quietly: check
 * `signal.aborted` to tell it from a finished job. Breaking out of the loop releases everything.
 */
export async function* followOutput(
  monitor: OutputMonitor,
  dir: string,
  jobId: string,
  options: FollowOutputOptions,
): AsyncGenerator<OutputEvent[], void, undefined> {
  const { selector, signal } = options;
  const limitBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
  if (signal?.aborted) return;
  let cursor = options.cursor;
  let noticed = false;
  let finished = false;
  let wake: (() => void) | undefined;
  let unsubscribe = monitor.subscribe(jobId, (notice) => {
    if (notice === 'output:finish') finished = true;
    noticed = true;
    wake?.();
  });
  if (!unsubscribe) finished = true;
  const release = (): void => {
    unsubscribe?.();
    unsubscribe = undefined;
    wake?.();
  };
  signal?.addEventListener('abort', release, { once: true });
  // Once the job has ended its view is final: the rest is paged through one reader, its files
  // opened once, not once per batch (a follower of a finished job is a catch-up read).
  let rest: OutputReader | undefined;
  try {
    while (!signal?.aborted) {
      if (finished) {
        // Opened after the end was announced, so its end is the final one.
        rest ??= await OutputReader.open(dir, selector, { sealed: true });
        const read = await rest.read(cursor, limitBytes);
        if (read.events.length === 0) return;
        cursor = read.cursor;
        yield read.events;
        continue;
      }
      noticed = false;
      const read = await monitor.read(jobId, dir, { selector, cursor, limitBytes });
      if (read.events.length > 0) {
        cursor = read.cursor;
        yield read.events;
        // Caught up with what was observed when it read: only a notice can bring more. Reading
        // again at once would cost every follower an empty read per growth, and keep a follower
        // that is only just behind rereading, one write at a time, instead of waiting for the
        // wakeup that carries several (see OutputListeners).
        if (read.cursor < read.end || noticed || finished) continue;
      }
      if (!noticed && !signal?.aborted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    }
  } finally {
    signal?.removeEventListener('abort', release);
    release();
    await rest?.close();
  }
}
