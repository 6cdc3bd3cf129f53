import { type Job, type JobStatus, TIMEOUT_STOPPER } from './job.ts';
import { queuedJob } from './queued-job.ts';
import { retryDelayMs } from './spec.ts';

/**
 * Statuses a retry policy runs again: a failure, a timeout, and a run whose node or processes were
 * lost (a crash, a node declared lost). A stop or a cancel is what a user asked for, never retried;
 * the stop a timeout makes (`TIMEOUT_STOPPER`) is not.
 */
export const RETRIED_STATUSES: readonly JobStatus[] = ['failed', 'timed_out', 'lost'];

/**
 * The next attempt of a job that just ended as `status`, or null when there is none: no policy,
 * not a retried status, or no attempt left. The next attempt is a new queued job with the same
 * spec and owner, waiting for its backoff to pass.
 */
export function nextAttempt(job: Job, status: JobStatus, now: Date, id: string): Job | null {
  const policy = job.spec.retry;
  // A run someone asked to stop is never retried, whatever it ended as (a failed start, say).
  const stopped = job.stop !== null && job.stop.by !== TIMEOUT_STOPPER;
  if (!policy || stopped || !RETRIED_STATUSES.includes(status) || job.attempt >= policy.attempts) return null;
  const delay = retryDelayMs(policy, job.attempt);
  const runAt = delay > 0 ? new Date(now.getTime() + delay) : null;
  return queuedJob({
    id,
    spec: job.spec,
    owner: job.owner,
    node: job.node,
    createdAt: now,
    runAt,
    attempt: job.attempt + 1,
    retryOf: job.id,
  });
}
