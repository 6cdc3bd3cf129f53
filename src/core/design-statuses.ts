import type { JobStatus } from './job.ts';

/**
 * How the original designs' status words map onto jobworker's job states (docs/compat.md shows
 * the same tables). Each adapter and the CLI take them from here, so there is one table per design.
 */

/** The workerctl design's statuses. */
export type WorkerctlStatus = 'created' | 'running' | 'finished' | 'stopped' | 'error';

/**
 * Our status as the workerctl design names it: waiting is `created`, alive (paused too) is
 * `running`, a zero exit `finished`, a stop (or a cancel before start) `stopped`, and any failure
 * (non-zero exit, signal, timeout, lost) `error`.
 */
export const WORKERCTL_STATUS = {
  queued: 'created',
  running: 'running',
  paused: 'running',
  succeeded: 'finished',
  failed: 'error',
  timed_out: 'error',
  lost: 'error',
  stopped: 'stopped',
  cancelled: 'stopped',
} as const satisfies Record<JobStatus, WorkerctlStatus>;

/** The workerctl design's job timeout: every job its action API starts ends after 60 s. */
export const WORKERCTL_TIMEOUT_MS = 60_000;

/** The Job Worker design's `list` filters. */
export type JobWorkerListFilter = 'all' | 'running' | 'failed' | 'cancelled' | 'done';

/**
 * The statuses each Job Worker `list` filter shows; `all` filters nothing and `done` means every
 * finished job.
 */
export const JOB_WORKER_LIST_FILTERS = {
  all: [],
  running: ['running', 'paused'],
  failed: ['failed', 'timed_out', 'lost'],
  cancelled: ['stopped', 'cancelled'],
  done: ['succeeded', 'failed', 'stopped', 'timed_out', 'cancelled', 'lost'],
} as const satisfies Record<JobWorkerListFilter, readonly JobStatus[]>;
