import type { Clock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';

/** First wait after a failed write; each failure doubles it, up to `WRITE_RETRY_MAX_MS`. */
export const WRITE_RETRY_FIRST_MS = 100;
/**
 * Longest wait between two tries. A full disk may last hours: one failed transaction every
 * couple of seconds per unrecorded job costs nothing, and a freed disk is noticed soon.
 */
export const WRITE_RETRY_MAX_MS = 2000;

/**
 * Whether a failed write may succeed later: the disk is full, the database is unreachable for now, or the store failed in a way
 * nobody raised on purpose (I/O, a lock held too long). A deliberate refusal (the job is gone,
 * the transition is illegal) never heals, so it is not retried.
 */
export function mayHeal(err: unknown): boolean {
  return (
    !(err instanceof JobworkerError) ||
    err.code === 'INSUFFICIENT_STORAGE' ||
    err.code === 'STORE_UNAVAILABLE'
  );
}

export interface UntilWrittenOptions {
  readonly clock: Clock;
  /** Aborting stops the retries: the result is then undefined (the write was not made). */
  readonly signal: AbortSignal;
  /** Told once, at the first failure that will be retried. */
  readonly onFirstFailure: (err: unknown) => void;
}

/**
 * Runs `write` until it succeeds, waiting between tries with a doubling backoff on the injected
 * clock. What is owed to history (how a job ended) must be recorded even when the disk is full
 * for a while, and must not need a restart once space returns. An error that `mayHeal` rejects
 * is thrown at once.
 */
export async function untilWritten<T>(
  write: () => Promise<T>,
  options: UntilWrittenOptions,
): Promise<T | undefined> {
  let waitMs = WRITE_RETRY_FIRST_MS;
  for (let attempt = 1; !options.signal.aborted; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!mayHeal(err)) throw err;
      if (attempt === 1) options.onFirstFailure(err);
    }
    await sleep(options.clock, waitMs, options.signal);
    waitMs = Math.min(waitMs * 2, WRITE_RETRY_MAX_MS);
  }
  return undefined;
}

/** Resolves after `ms` on `clock`, or at once when `signal` aborts (its timer cleared). */
function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = clock.setTimer(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      timer.clear();
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
