import { NotFoundError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';
import { SPEC_LIMITS } from '../core/spec.ts';

/**
 * The latest attempt of `job`: its `retriedAs` followed, with `get`, to the attempt that was not
 * retried (yet). A retry is stored in the transaction that records the end of the attempt it
 * retries (`JobStore.markRetried`, by the node that ran it or by the one that found that node
 * lost), so no read sees an attempt ended and its retry still to come: an ended attempt without
 * `retriedAs` is the last. A next attempt deleted since ends the chain at the last that remains.
 */
export async function latestAttempt(job: Job, get: (id: string) => Promise<Job>): Promise<Job> {
  let latest = job;
  // Bounded: a chain is as long as a retry policy allows (checked at submission).
  for (let hops = 0; latest.retriedAs !== null && hops < SPEC_LIMITS.attempts; hops++) {
    try {
      latest = await get(latest.retriedAs);
    } catch (err) {
      if (err instanceof NotFoundError) return latest;
      throw err;
    }
  }
  return latest;
}
