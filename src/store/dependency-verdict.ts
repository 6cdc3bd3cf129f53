import type { Updateable } from 'kysely';
import type { Job } from '../core/job.ts';
import type { JobRow } from './schema.ts';

/** Where a job stands with its dependencies (each given as its latest attempt). */
export type DependencyVerdict =
  | { readonly kind: 'ready' }
  | { readonly kind: 'waiting' }
  | { readonly kind: 'failed'; readonly reason: string };

/**
 * Ready when every dependency succeeded; failed as soon as one ended otherwise (with a reason
 * naming it); waiting while one has not ended or will be retried. Shared by every store.
 */
export function dependencyVerdict(deps: readonly Job[]): DependencyVerdict {
  let waiting = false;
  for (const dep of deps) {
    if (dep.status === 'succeeded') continue;
    if (dep.status === 'queued' || dep.status === 'running' || dep.status === 'paused' || dep.retriedAs) {
      waiting = true;
      continue;
    }
    const how = dep.exit?.reason ? ` (${dep.exit.reason})` : '';
    return { kind: 'failed', reason: `dependency ${dep.id} ended ${dep.status}${how}` };
  }
  return waiting ? { kind: 'waiting' } : { kind: 'ready' };
}

/**
 * The job as an admission stores it, given its dependencies' verdict: cancelled at once (with a
 * reason naming the dependency) when one already ended without success; else queued, holding for
 * its dependencies, or for its `runAt`, or for nothing but a slot. Shared by every store.
 */
export function admittedAs(job: Job, verdict: DependencyVerdict, now: Date): Job {
  if (verdict.kind === 'failed') {
    return {
      ...job,
      status: 'cancelled',
      hold: null,
      finishedAt: now,
      exit: { exitCode: null, signal: null, reason: verdict.reason },
    };
  }
  const hold = verdict.kind === 'waiting' ? 'after' : job.runAt && job.runAt > now ? 'delay' : null;
  return { ...job, hold };
}

/**
 * The columns that settle a job waiting on dependencies whose verdict is in: cancelled with the
 * failed one's reason, or released to wait for its `runAt` (when still ahead) or a slot.
 */
export function settledColumns(
  verdict: Exclude<DependencyVerdict, { readonly kind: 'waiting' }>,
  runAtMs: number | null,
  nowMs: number,
): Updateable<JobRow> {
  return verdict.kind === 'failed'
    ? { status: 'cancelled', hold: null, exit_reason: verdict.reason, finished_at: nowMs }
    : { hold: runAtMs !== null && runAtMs > nowMs ? 'delay' : null };
}
