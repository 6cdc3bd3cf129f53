import { IllegalTransitionError } from './errors.ts';
import type { JobStatus } from './job.ts';

/**
 * Every legal move between statuses. `queued → failed` is a failure to start (and `queued → cancelled`
 * a stop before it started, or a dependency that did not succeed); a paused job can end in every way a
 * running one can (a stop thaws it first, the OOM killer or an outside SIGKILL need not);
 * `running → lost` is a job whose processes vanished without an exit status.
 */
export const TRANSITIONS = {
  queued: ['running', 'cancelled', 'failed'],
  running: ['paused', 'succeeded', 'failed', 'stopped', 'timed_out', 'lost'],
  paused: ['running', 'succeeded', 'failed', 'stopped', 'timed_out', 'lost'],
  succeeded: [],
  failed: [],
  stopped: [],
  timed_out: [],
  cancelled: [],
  lost: [],
} as const satisfies Record<JobStatus, readonly JobStatus[]>;

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return (TRANSITIONS[from] as readonly JobStatus[]).includes(to);
}

/** Throws an `IllegalTransitionError` naming the current status when `from → to` is not allowed. */
export function assertTransition(jobId: string, from: JobStatus, to: JobStatus): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(jobId, from, to);
}

/** Why a job stopped before it started was cancelled: the reason on record (`exit.reason`). */
export function cancelledBeforeStart(by: string): string {
  return `cancelled by ${by} before it started`;
}
