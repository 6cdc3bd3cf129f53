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
    const ms = parseIsoTime(runAt);
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
  // It would say nothing: without a key there is never a duplicate.
  if (onDuplicate !== undefined && spec.dedupeKey === null) {
    throw ValidationError.expected('onDuplicate', 'given only with a `dedupeKey`', onDuplicate);
  }
  return { spec, runAt: at, onDuplicate: onDuplicate ?? 'reject' };
}

/** A date and a time with a zone, as `Date.parse` reads it the same everywhere. */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))$/;

const EXPECTED_TIME = 'an ISO 8601 time such as 2026-12-02T03:00:00Z';

/**
 * The instant an ISO 8601 time names, or a `ValidationError` on `runAt`. `Date.parse` rolls an
 * impossible date over (February 30 becomes March 2) and takes 24:00: each part is checked first.
 */
function parseIsoTime(value: unknown): number {
  const match = typeof value === 'string' ? ISO_TIME.exec(value) : null;
  if (!match) throw ValidationError.expected('runAt', EXPECTED_TIME, value);
  const [year, month, day, hour, minute, second = 0, zoneHour = 0, zoneMinute = 0] = match
    .slice(1)
    .map((part) => (part === undefined ? undefined : Number(part)));
  const problem =
    month! < 1 || month! > 12
      ? `there is no month ${month}`
      : day! < 1 || day! > daysIn(year!, month!)
        ? `${MONTHS[month! - 1]} ${year} has ${daysIn(year!, month!)} days`
        : hour! > 23 || minute! > 59 || second! > 59
          ? 'hours go to 23, minutes and seconds to 59'
          : zoneHour! > 23 || zoneMinute! > 59
            ? 'a zone offset goes from -23:59 to +23:59'
            : undefined;
  if (problem) {
    throw ValidationError.expected('runAt', `${EXPECTED_TIME}, on a day of the calendar (${problem})`, value);
  }
  return Date.parse(value as string);
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}
