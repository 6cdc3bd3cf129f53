import type { Updateable } from 'kysely';
import { ValidationError } from '../core/errors.ts';
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

/**
 * The dependencies a job names in `after`, each followed along its retries to its latest attempt
 * (read with `read`, the store's own look-up in its transaction), each once: two ids of one chain of
 * attempts are one dependency. A ValidationError on `after[i]` for an id with no job, and for one
 * whose retries lead to an attempt deleted since: how that chain ended is not known any more, and
 * a job waiting on it would wait for good. Shared by every store.
 */
export async function latestAttempts(
  after: readonly string[],
  read: (id: string) => Promise<JobRow | undefined>,
): Promise<JobRow[]> {
  const deps = new Map<string, JobRow>();
  for (const [i, id] of after.entries()) {
    let dep = await read(id);
    if (!dep) throw new ValidationError(`after[${i}]`, `No job with id ${id}`);
    // Bounded: a chain of attempts is as long as a retry policy allows (checked at submission).
    for (let hops = 0; dep.retried_as !== null && hops < 1000; hops++) {
      const next: JobRow | undefined = await read(dep.retried_as);
      if (!next) {
        throw new ValidationError(
          `after[${i}]`,
          `Job ${id} was retried as ${dep.retried_as}, which has been deleted: how its retries ended is not known; name a job that still exists`,
        );
      }
      dep = next;
    }
    deps.set(dep.id, dep);
  }
  return [...deps.values()];
}
