import { InvalidArgumentError } from 'commander';
import type { CreateJobBody, OnDuplicate, RetryBody } from '../client/api-types.ts';
import { isJobId } from '../core/ids.ts';
import { QUEUE_NAME, RETRY_BACKOFF_DEFAULTS, SPEC_LIMITS } from '../core/spec.ts';
import { parseDuration } from './durations.ts';
import { UsageError } from './errors.ts';

/*
 * The options of `start` that say where and when a job runs (docs/queues.md). The parsers throw
 * commander's `InvalidArgumentError`, which commander turns into a usage error naming the
 * option; checks across options throw `UsageError`. The server checks everything again.
 */

/** What commander collected for the scheduling options of `start`. */
export interface ScheduleOptions {
  queue?: string;
  priority?: number;
  after?: string[];
  delay?: number;
  at?: string;
  retry?: number;
  retryBackoff?: RetryBody['backoff'];
  dedupe?: string;
  onDuplicate?: OnDuplicate;
}

export function parseQueueName(text: string): string {
  if (!QUEUE_NAME.test(text)) {
    throw new InvalidArgumentError(
      `Expected a queue name: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit, got ${JSON.stringify(text)}.`,
    );
  }
  return text;
}

export function parsePriority(text: string): number {
  const n = Number(text);
  if (!/^[-+]?\d+$/.test(text) || Math.abs(n) > SPEC_LIMITS.priority) {
    throw new InvalidArgumentError(
      `Expected an integer from -${SPEC_LIMITS.priority} to ${SPEC_LIMITS.priority}, got ${JSON.stringify(text)}.`,
    );
  }
  return n;
}

/**
 * Collects `--after JOB` (repeatable): a job id (lower-cased), or what else names a job (an id
 * prefix, a name, `last`), which `start` resolves on the server before submitting. Each once.
 */
export function collectJobRef(text: string, previous: string[] = []): string[] {
  const trimmed = text.trim();
  if (trimmed === '')
    throw new InvalidArgumentError('Expected a job: its id, 6+ characters of it, its name, or last.');
  const id = isJobId(trimmed.toLowerCase()) ? trimmed.toLowerCase() : trimmed;
  if (previous.includes(id)) throw new InvalidArgumentError(`Job ${id} is given twice.`);
  if (previous.length >= SPEC_LIMITS.after) {
    throw new InvalidArgumentError(`Expected at most ${SPEC_LIMITS.after} jobs.`);
  }
  return [...previous, id];
}

/** N retries, so N + 1 attempts in all. */
export function parseRetries(text: string): number {
  const n = Number(text);
  const max = SPEC_LIMITS.attempts - 1;
  if (!/^\d+$/.test(text) || n > max) {
    throw new InvalidArgumentError(
      `Expected a number of retries from 0 to ${max}, got ${JSON.stringify(text)}.`,
    );
  }
  return n;
}

/**
 * `INITIAL[,FACTOR[,MAX]]`, as in `1s,2,5m`: the wait before the first retry, what each later
 * wait is multiplied by, and the longest wait. Parts left out take the server's defaults, except
 * that a MAX left out is never below INITIAL (`--retry-backoff 10m` waits 10 minutes each time).
 */
export function parseBackoff(text: string): NonNullable<RetryBody['backoff']> {
  const parts = text.split(',');
  const [initial, factor, max] = parts;
  const expected = `Expected INITIAL[,FACTOR[,MAX]] such as 1s,2,5m, got ${JSON.stringify(text)}.`;
  if (parts.length > 3 || initial === undefined) throw new InvalidArgumentError(expected);
  const duration = (part: string) => {
    try {
      return parseDuration(part);
    } catch {
      throw new InvalidArgumentError(expected);
    }
  };
  const backoff: NonNullable<RetryBody['backoff']> = { initialMs: duration(initial) };
  if (factor !== undefined && factor !== '') {
    const f = Number(factor);
    if (!/^\d+(\.\d+)?$/.test(factor) || f < 1 || f > SPEC_LIMITS.backoffFactor) {
      throw new InvalidArgumentError(
        `Expected a FACTOR from 1 to ${SPEC_LIMITS.backoffFactor}, got ${JSON.stringify(factor)}.`,
      );
    }
    backoff.factor = f;
  }
  if (max !== undefined) {
    backoff.maxMs = duration(max);
    if (backoff.maxMs < backoff.initialMs!) {
      throw new InvalidArgumentError(`Expected MAX to be at least INITIAL, got ${JSON.stringify(text)}.`);
    }
  } else if (backoff.initialMs! > RETRY_BACKOFF_DEFAULTS.maxMs) {
    backoff.maxMs = backoff.initialMs!;
  }
  for (const ms of [backoff.initialMs!, backoff.maxMs ?? 0]) {
    if (ms > SPEC_LIMITS.backoffMs) throw new InvalidArgumentError('Expected waits of at most 7 days.');
  }
  return backoff;
}

export function parseDedupeKey(text: string): string {
  const length = [...text].length;
  if (length < 1 || length > SPEC_LIMITS.dedupeKeyChars) {
    throw new InvalidArgumentError(`Expected 1 to ${SPEC_LIMITS.dedupeKeyChars} characters, got ${length}.`);
  }
  return text;
}

const TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * An ISO 8601 date or time, returned as UTC ISO 8601. Without a zone it is local time, as
 * `date` reads it (`2026-12-01` is local midnight); a day that is not in the calendar, a local
 * time the clocks skip (a daylight saving gap) and an offset past ±23:59 are refused rather than
 * rolled over.
 */
export function parseTime(text: string): string {
  const match = TIME.exec(text.trim());
  const expected = `Expected an ISO 8601 time such as 2026-12-01T03:00:00Z or 2026-12-01 03:00 (local), got ${JSON.stringify(text)}.`;
  if (match === null) throw new InvalidArgumentError(expected);
  const [y, mo, d, h = 0, mi = 0, s = 0] = match.slice(1, 7).map((part) => Number(part ?? 0)) as number[];
  const ms = Math.floor(Number(`0.${match[7] ?? '0'}`) * 1000);
  const zone = match[8]?.toUpperCase();
  const daysInMonth = new Date(Date.UTC(y!, mo!, 0)).getUTCDate();
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > daysInMonth || h > 23 || mi > 59 || s > 59) {
    throw new InvalidArgumentError(expected);
  }
  let at: Date;
  if (zone === undefined) {
    at = new Date(y!, mo! - 1, d!, h, mi, s, ms);
    // `Date` moves a time in a spring-forward gap past it (02:30 becomes 03:30) without a word:
    // the job would start an hour off. A time that does not come back as given never comes.
    if (at.getDate() !== d || at.getHours() !== h || at.getMinutes() !== mi) {
      const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
      throw new InvalidArgumentError(
        `Expected a local time that exists, got ${JSON.stringify(text)}: the clocks of ${tz} skip it (daylight saving time). Give a time after the change, or one with a zone offset.`,
      );
    }
    // `Date` takes the earlier of a time the clocks go through twice (the hour repeated when
    // daylight saving ends): a job meant for the second would start an hour early.
    const other = repeatedAs(at);
    if (other !== null) {
      const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
      const wall = text.trim().replace(' ', 'T');
      throw new InvalidArgumentError(
        `Expected a local time that comes once, got ${JSON.stringify(text)}: the clocks of ${tz} go through it twice (daylight saving time ends). Give it with its zone offset: ${wall}${offsetText(at)} for the first, ${wall}${offsetText(other)} for the second.`,
      );
    }
  } else {
    const offset = zone === 'Z' ? 0 : offsetMinutes(zone);
    // The server checks a `runAt` offset, but this one never reaches it: the time is sent in UTC.
    if (offset === null) {
      throw new InvalidArgumentError(
        `Expected a zone offset from -23:59 to +23:59, got ${JSON.stringify(zone)} in ${JSON.stringify(text)}.`,
      );
    }
    at = new Date(Date.UTC(y!, mo! - 1, d!, h, mi, s, ms) - offset * 60_000);
  }
  if (Number.isNaN(at.getTime())) throw new InvalidArgumentError(expected);
  return at.toISOString();
}

/**
 * The other instant that reads as the same local time as `at` (the second pass through an hour
 * the clocks repeat), or null when there is none. Each candidate is the local time taken with the
 * offset in force a day before or a day after; zones change offset far less often than that.
 */
function repeatedAs(at: Date): Date | null {
  const wall = at.getTime() - at.getTimezoneOffset() * 60_000;
  for (const dayMs of [-86_400_000, 86_400_000]) {
    const offsetMs = -new Date(at.getTime() + dayMs).getTimezoneOffset() * 60_000;
    const candidate = new Date(wall - offsetMs);
    if (candidate.getTime() !== at.getTime() && sameLocalTime(candidate, at)) return candidate;
  }
  return null;
}

function sameLocalTime(a: Date, b: Date): boolean {
  return (
    a.getFullYear() === b.getFullYear() &&
    a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate() &&
    a.getHours() === b.getHours() &&
    a.getMinutes() === b.getMinutes() &&
    a.getSeconds() === b.getSeconds()
  );
}

/** The local offset in force at `at`, as `+HH:MM`. */
function offsetText(at: Date): string {
  const east = -at.getTimezoneOffset();
  const abs = Math.abs(east);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${east < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** `+HH:MM` or `+HHMM` in minutes east of UTC, or null past 23 hours or 59 minutes. */
function offsetMinutes(zone: string): number | null {
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2));
  if (hours > 23 || minutes > 59) return null;
  const total = hours * 60 + minutes;
  return zone.startsWith('-') ? -total : total;
}

/** The body fields of the scheduling options; options that only make sense with another are usage errors. */
export function scheduleBody(options: ScheduleOptions): Partial<CreateJobBody> {
  if (options.retryBackoff !== undefined && options.retry === undefined) {
    throw new UsageError('--retry-backoff needs --retry N (how many retries)');
  }
  if (options.onDuplicate !== undefined && options.dedupe === undefined) {
    throw new UsageError('--on-duplicate needs --dedupe KEY');
  }
  const body: Partial<CreateJobBody> = {};
  if (options.queue !== undefined) body.queue = options.queue;
  if (options.priority !== undefined) body.priority = options.priority;
  if (options.after !== undefined) body.after = options.after;
  if (options.delay !== undefined) body.delayMs = options.delay;
  if (options.at !== undefined) body.runAt = options.at;
  if (options.retry !== undefined) {
    body.retry = { attempts: options.retry + 1 };
    if (options.retryBackoff !== undefined) body.retry.backoff = options.retryBackoff;
  }
  if (options.dedupe !== undefined) body.dedupeKey = options.dedupe;
  if (options.onDuplicate !== undefined) body.onDuplicate = options.onDuplicate;
  return body;
}
