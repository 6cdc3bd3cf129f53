import { ValidationError } from './errors.ts';
import type { JobSpec } from './job.ts';
import { normalizeSpec, type SpecDefaults } from './spec.ts';

/** What a duplicate `dedupeKey` answers: `reject` (a `DuplicateJobError`) or `return` (the job there is). */
export type OnDuplicate = 'reject' | 'return';

/** A checked submission: what to run, and when and how to admit it. */
export interface Submission {
  readonly spec: JobSpec;
  /** Not before this time; null for as soon as possible. */
  readonly runAt: Date | null;
  readonly onDuplicate: OnDuplicate;
}

/** The longest delay a submission may ask for: a year. */
export const MAX_DELAY_MS = 366 * 24 * 3600 * 1000;

/**
 * Checks a submission (a spec plus `runAt` or `delayMs` and `onDuplicate`) and returns its
 * normalized form, or throws a `ValidationError` naming the first bad field. Pure: `now` decides
 * what `delayMs` means.
 */
export function normalizeSubmission(input: unknown, defaults: SpecDefaults & { now: Date }): Submission {
  const spec = normalizeSpec(input, defaults);
  const record = input as Record<string, unknown>;
  const { runAt, delayMs, onDuplicate } = record;
  if (runAt !== undefined && delayMs !== undefined) {
    throw new ValidationError('delayMs', 'Give `runAt` or `delayMs`, not both');
  }
  let at: Date | null = null;
  if (runAt !== undefined) {
    const ms = typeof runAt === 'string' && ISO_TIME.test(runAt) ? Date.parse(runAt) : Number.NaN;
    if (!Number.isFinite(ms)) {
      throw ValidationError.expected('runAt', 'an ISO 8601 time such as 2026-12-02T03:00:00Z', runAt);
    }
    if (ms - defaults.now.getTime() > MAX_DELAY_MS) {
      throw ValidationError.expected('runAt', 'a time at most a year from now', runAt);
    }
    at = ms > defaults.now.getTime() ? new Date(ms) : null;
  } else if (delayMs !== undefined) {
    if (typeof delayMs !== 'number' || !Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
      throw ValidationError.expected(
        'delayMs',
        `an integer of milliseconds from 0 to ${MAX_DELAY_MS}`,
        delayMs,
      );
    }
    at = delayMs > 0 ? new Date(defaults.now.getTime() + delayMs) : null;
  }
  if (onDuplicate !== undefined && onDuplicate !== 'reject' && onDuplicate !== 'return') {
    throw ValidationError.expected('onDuplicate', '`reject` or `return`', onDuplicate);
  }
  return { spec, runAt: at, onDuplicate: onDuplicate ?? 'reject' };
}

/** A date and a time with a zone, as `Date.parse` reads it the same everywhere. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
