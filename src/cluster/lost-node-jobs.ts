import { nextAttempt } from '../core/attempts.ts';
import { IllegalTransitionError } from '../core/errors.ts';
import { newJobId } from '../core/ids.ts';
import { isFinal, type Job } from '../core/job.ts';
import type { JobStore } from '../store/job-store.ts';
import type { NodeRecord } from '../store/node-store.ts';

/** What deciding a lost node's jobs changed, for events and logs. */
export interface LostNodeOutcome {
  /** Its running and paused jobs, now `lost` (or retried: their next attempt is queued). */
  readonly lost: Job[];
  /** Jobs it had claimed but not started: back in their queues. */
  readonly released: Job[];
  /** Jobs it had claimed with a stop recorded on the claim: cancelled, never started. */
  readonly cancelled: Job[];
  /** Dependents released or cancelled because a lost job will not succeed. */
  readonly settled: Job[];
}

/**
 * Decides the jobs of a node declared lost (docs/cluster.md, "A lost node"): each running or
 * paused job is recorded `lost` with a reason naming the node, or retried on any node when its
 * retry policy allows; claims it had not started go back to their queues (cancelled when a stop
 * was recorded on them: a user stopped them before they started); dependents settle.
 * Each change is one checked transition, so a node that comes back and records an end first
 * wins, and this one skips that job.
 */
export async function decideLostNodeJobs(
  store: JobStore,
  node: NodeRecord,
  now: Date,
): Promise<LostNodeOutcome> {
  const lost: Job[] = [];
  const released: Job[] = [];
  const cancelled: Job[] = [];
  const settled: Job[] = [];
  const reason = `node ${node.id} (${node.url}) was lost: no heartbeat since ${node.heartbeatAt.toISOString()}`;
  for (const job of await store.listRunning(node.id)) {
    const finish = {
      status: 'lost' as const,
      exit: { exitCode: null, signal: null, reason },
      finishedAt: now,
      outputBytes: job.outputBytes,
    };
    try {
      const next = nextAttempt(job, 'lost', now, newJobId(now.getTime()));
      const ended = next
        ? await store.markRetried(job.id, finish, next)
        : await store.markFinished(job.id, finish);
      lost.push(ended);
      if (ended.retriedAs === null) settled.push(...(await store.settleDependents(job.id, now)));
    } catch (err) {
      // It ended meanwhile (its node came back first): that end stands.
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }
  for (const job of await store.listStarting(node.id)) {
    try {
      const back = await store.releaseClaim(job.id, node.id);
      if (back.status === 'cancelled') {
        cancelled.push(back);
        settled.push(...(await store.settleDependents(job.id, now)));
      } else if (back.hold === null) released.push(back);
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }
  return { lost: lost.filter((j) => isFinal(j.status)), released, cancelled, settled };
}
