import type { Updateable } from 'kysely';
import { ValidationError } from '../core/errors.ts';
import { isJobId } from '../core/ids.ts';
import {
  dedupeScopeOf,
  JOB_STATUSES,
  type Job,
  type JobProgress,
  type JobSpec,
  type JobUsage,
  type ProcessIdentity,
  TIMEOUT_STOPPER,
} from '../core/job.ts';
import type { JobFinish } from './job-store.ts';
import type { JobRow } from './schema.ts';

/** The row that stores `job`; a `ValidationError` for what the schema relies on (id, status, dates). */
export function jobToRow(job: Job): JobRow {
  if (typeof job.id !== 'string' || !isJobId(job.id)) {
    throw ValidationError.expected('id', 'a UUIDv7 job id', job.id);
  }
  if (!JOB_STATUSES.includes(job.status)) {
    throw ValidationError.expected('status', `one of ${JOB_STATUSES.join(', ')}`, job.status);
  }
  return {
    id: job.id,
    status: job.status,
    owner: job.owner,
    name: job.spec.name,
    node: job.node,
    created_at: toMillis('createdAt', job.createdAt),
    started_at: job.startedAt === null ? null : toMillis('startedAt', job.startedAt),
    finished_at: job.finishedAt === null ? null : toMillis('finishedAt', job.finishedAt),
    spec: JSON.stringify(job.spec),
    process: job.process === null ? null : JSON.stringify(job.process),
    stop_at: job.stop === null ? null : toMillis('stop.at', job.stop.at),
    stop_by: job.stop?.by ?? null,
    stop_grace_ms: job.stop?.graceMs ?? null,
    stop_also_by: job.stop?.alsoBy ?? null,
    stop_forced: job.stopForced ? 1 : 0,
    exit_code: job.exit?.exitCode ?? null,
    exit_signal: job.exit?.signal ?? null,
    exit_reason: job.exit?.reason ?? null,
    stdout_bytes: job.outputBytes.stdout,
    stderr_bytes: job.outputBytes.stderr,
    queue: job.spec.queue,
    priority: job.spec.priority,
    dedupe_key: job.spec.dedupeKey,
    dedupe_scope: dedupeScopeOf(job),
    run_at: job.runAt === null ? null : toMillis('runAt', job.runAt),
    hold: job.hold,
    attempt: job.attempt,
    retry_of: job.retryOf,
    retried_as: job.retriedAs,
    paused_at: job.pausedAt === null ? null : toMillis('pausedAt', job.pausedAt),
    usage: job.usage === null ? null : JSON.stringify(job.usage),
    result_error: job.resultError,
    progress: progressToText(job.progress),
  };
}

export function rowToJob(row: JobRow): Job {
  return {
    id: row.id,
    spec: specOf(row.spec),
    status: row.status,
    owner: row.owner,
    createdAt: new Date(row.created_at),
    startedAt: row.started_at === null ? null : new Date(row.started_at),
    finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
    stop:
      row.stop_at === null
        ? null
        : {
            at: new Date(row.stop_at),
            by: row.stop_by ?? '',
            graceMs: row.stop_grace_ms ?? 0,
            // Undefined in an outbox snapshot taken before the column (the snapshot lists its columns).
            ...(row.stop_also_by == null ? {} : { alsoBy: row.stop_also_by }),
          },
    stopForced: row.stop_forced === 1,
    process: row.process === null ? null : (JSON.parse(row.process) as ProcessIdentity),
    exit:
      row.exit_reason === null
        ? null
        : { exitCode: row.exit_code, signal: row.exit_signal, reason: row.exit_reason },
    node: row.node,
    outputBytes: { stdout: row.stdout_bytes, stderr: row.stderr_bytes },
    runAt: row.run_at === null ? null : new Date(row.run_at),
    hold: row.hold,
    attempt: row.attempt,
    retryOf: row.retry_of,
    retriedAs: row.retried_as,
    pausedAt: row.paused_at === null ? null : new Date(row.paused_at),
    usage: row.usage === null || row.usage === undefined ? null : (JSON.parse(row.usage) as JobUsage),
    resultError: row.result_error ?? null,
    progress: progressOf(row.progress ?? null),
  };
}

/** A job's progress as its column stores it: JSON, with `at` in Unix milliseconds. */
export function progressToText(progress: JobProgress | null): string | null {
  if (progress === null) return null;
  return JSON.stringify({ ...progress, at: toMillis('progress.at', progress.at) });
}

function progressOf(text: string | null): JobProgress | null {
  if (text === null) return null;
  const stored = JSON.parse(text) as Omit<JobProgress, 'at'> & { at: number };
  return { ...stored, at: new Date(stored.at) };
}

function specOf(json: string): JobSpec {
  const spec = JSON.parse(json) as JobSpec;
  // Limits stored before the documented form (API v1's `memoryBytes`, `cpuMillis`) read as it.
  const legacy = spec.limits as { memoryBytes?: number; cpuMillis?: number } | undefined;
  if (legacy && (legacy.memoryBytes !== undefined || legacy.cpuMillis !== undefined)) {
    const { memoryBytes, cpuMillis, ...rest } = legacy;
    const limits = {
      ...rest,
      ...(memoryBytes !== undefined ? { memory: memoryBytes } : {}),
      ...(cpuMillis !== undefined ? { cpu: cpuMillis / 1000 } : {}),
    };
    return specOf(JSON.stringify({ ...spec, limits }));
  }
  // A spec stored before dedupe scopes existed has none: its key was its owner's, which is null.
  // One stored before run-as accounts ran as the server's account, which is null.
  // One stored before named tasks ran no task.
  if (spec.dedupeScope === undefined || spec.account === undefined || spec.task === undefined) {
    return {
      ...spec,
      dedupeScope: spec.dedupeScope ?? null,
      account: spec.account ?? null,
      task: spec.task ?? null,
    };
  }
  return spec;
}

/** A date as integer Unix milliseconds, the unit every time column uses. */
export function toMillis(field: string, date: Date): number {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw ValidationError.expected(field, 'a valid Date', date);
  return ms;
}

/**
 * The columns that record a job's end, given the stops already on record (`current`): the
 * finish's status, exit, sizes, usage and result error, and its stop only when none was recorded
 * before. A user's stop during the timeout's (`stop_also_by`, or the finish's `stop.alsoBy` when
 * none is on record) is recorded and named in the reason. Shared by every store (each checks the
 * transition first; see `finishDecision`).
 */
export function finishColumns(
  finish: JobFinish,
  current: {
    readonly stop_at: number | null;
    readonly stop_by: string | null;
    readonly stop_also_by: string | null;
  },
  extra: Updateable<JobRow> = {},
): Updateable<JobRow> {
  const { stop, result } = finish;
  const reason = finish.exit.reason;
  // One that could not be recorded when asked (a full disk) comes with the end: kept only beside
  // the timeout's stop, as `stopRequestedDecision` keeps it.
  const firstBy = current.stop_at === null ? stop?.by : current.stop_by;
  const alsoBy = current.stop_also_by ?? (firstBy === TIMEOUT_STOPPER ? stop?.alsoBy : undefined) ?? null;
  return {
    status: finish.status,
    exit_code: finish.exit.exitCode,
    exit_signal: finish.exit.signal,
    exit_reason: alsoBy === null ? reason : `${reason}; stopped by ${alsoBy} meanwhile`,
    ...(alsoBy !== current.stop_also_by ? { stop_also_by: alsoBy } : {}),
    finished_at: toMillis('finishedAt', finish.finishedAt),
    stdout_bytes: finish.outputBytes.stdout,
    stderr_bytes: finish.outputBytes.stderr,
    usage: finish.usage ? JSON.stringify(finish.usage) : null,
    hold: null,
    paused_at: null,
    ...(result === undefined ? {} : { result_error: 'error' in result ? result.error : null }),
    ...extra,
    ...(stop !== undefined && current.stop_at === null
      ? { stop_at: toMillis('stop.at', stop.at), stop_by: stop.by, stop_grace_ms: stop.graceMs }
      : {}),
    ...(finish.stopForced === true ? { stop_forced: 1 } : {}),
  };
}
