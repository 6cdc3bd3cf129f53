import { ValidationError } from '../core/errors.ts';
import { isJobId } from '../core/ids.ts';
import { JOB_STATUSES, type Job, type JobStatus } from '../core/job.ts';
import type { JobListQuery, JobPage } from './job-store.ts';

/** The largest page `listJobs` returns. */
export const MAX_PAGE_SIZE = 1000;

/** The longest `text` filter: a search box, not a document. */
export const MAX_TEXT_CHARS = 200;

/** A `JobListQuery` that passed `checkListQuery`, in canonical form: what stores build their SQL from. */
export interface CheckedListQuery {
  /** Distinct statuses in `JOB_STATUSES` order, or null for any status. */
  readonly statuses: readonly JobStatus[] | null;
  readonly owner: string | null;
  readonly name: string | null;
  /** Exact queue name. */
  readonly queue: string | null;
  /** 1 to `MAX_TEXT_CHARS` characters, matched case-insensitively in the name or the command line. */
  readonly text: string | null;
  /** Lower-case id prefix: the range `[idPrefix, idPrefix + 'g')`. */
  readonly idPrefix: string | null;
  readonly label: { readonly key: string; readonly value: string } | null;
  readonly limit: number;
  /** Only jobs with a smaller id than this one. */
  readonly before: string | null;
}

/**
 * Checks a list query and returns its canonical form, or throws a `ValidationError` naming the
 * field (`limit`, `cursor`, `status`, `owner`, `name`, `queue`, `text`, `idPrefix`, `label`). A malformed cursor is a
 * `ValidationError` on `cursor`, not a `CursorError`: BAD_CURSOR means an output cursor.
 */
export function checkListQuery(query: JobListQuery): CheckedListQuery {
  const { limit } = query;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw ValidationError.expected('limit', `an integer from 1 to ${MAX_PAGE_SIZE}`, limit);
  }
  return {
    statuses: query.status === undefined ? null : checkStatuses(query.status),
    owner: optionalText('owner', query.owner),
    name: optionalText('name', query.name),
    queue: optionalText('queue', query.queue),
    text: query.text === undefined ? null : checkText(query.text),
    idPrefix: query.idPrefix === undefined ? null : checkIdPrefix(query.idPrefix),
    label: query.label === undefined ? null : checkLabel(query.label),
    limit,
    before: query.cursor === undefined ? null : decodeCursor(query.cursor),
  };
}

/**
 * Turns the rows of a query that asked for `limit + 1` rows, newest first, into a page: the extra
 * row only tells that there is a next page, which continues after the last job shown.
 */
export function pageOf<R>(rows: readonly R[], limit: number, toJob: (row: R) => Job): JobPage {
  const jobs = rows.slice(0, limit).map(toJob);
  const last = jobs.at(-1);
  return { jobs, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last.id) : null };
}

// The cursor is the last id of the page: ids are unique and sort newest last, so "older than the
// cursor" is one index range. Callers treat it as opaque, which leaves room to change the encoding.
function encodeCursor(id: string): string {
  return id;
}

function decodeCursor(cursor: unknown): string {
  if (typeof cursor !== 'string' || !isJobId(cursor)) {
    throw ValidationError.expected('cursor', 'the `nextCursor` of a previous page', cursor);
  }
  return cursor;
}

function checkStatuses(value: unknown): JobStatus[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw ValidationError.expected('status', 'a non-empty list of job statuses', value);
  }
  for (const status of value) {
    if (!(JOB_STATUSES as readonly unknown[]).includes(status)) {
      throw ValidationError.expected('status', `one of ${JOB_STATUSES.join(', ')}`, status);
    }
  }
  return JOB_STATUSES.filter((s) => value.includes(s));
}

function optionalText(field: string, value: unknown): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'string') throw ValidationError.expected(field, 'a string', value);
  return value;
}

function checkText(value: unknown): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > MAX_TEXT_CHARS) {
    throw ValidationError.expected('text', `a string of 1 to ${MAX_TEXT_CHARS} characters`, value);
  }
  return value;
}

function checkLabel(value: unknown): { key: string; value: string } {
  if (typeof value !== 'object' || value === null) {
    throw ValidationError.expected('label', 'an object with `key` and `value`', value);
  }
  const label = value as { key?: unknown; value?: unknown };
  if (typeof label.key !== 'string') throw ValidationError.expected('label.key', 'a string', label.key);
  if (typeof label.value !== 'string') throw ValidationError.expected('label.value', 'a string', label.value);
  return { key: label.key, value: label.value };
}

/** Ids are lower-case hex with dashes: a prefix of one is 1 to 36 of those characters. */
const ID_PREFIX = /^[0-9a-f-]{1,36}$/;

function checkIdPrefix(value: unknown): string {
  if (typeof value !== 'string' || !ID_PREFIX.test(value)) {
    throw ValidationError.expected(
      'idPrefix',
      'the start of a job id: 1 to 36 lower-case hex digits and dashes',
      value,
    );
  }
  return value;
}

/**
 * The first string after every id that starts with `prefix`: ids use only `0-9`, `a-f` and `-`,
 * all below `g`, so `[prefix, prefix + 'g')` is exactly the ids with that prefix.
 */
export function idPrefixEnd(prefix: string): string {
  return `${prefix}g`;
}
