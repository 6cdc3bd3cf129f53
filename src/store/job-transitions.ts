import type { Updateable } from 'kysely';
import { ClaimLostError, IllegalTransitionError, ValidationError } from '../core/errors.ts';
import { isFinal, type Job, type StopRequest, TIMEOUT_STOPPER } from '../core/job.ts';
import { assertTransition, cancelledBeforeStart } from '../core/states.ts';
import { finishColumns, toMillis } from './job-row.ts';
import type { JobFinish } from './job-store.ts';
import type { JobRow } from './schema.ts';

/**
 * The state changes every store makes, as decisions over the columns its checks read: each
 * takes the job's current state (read inside the store's transaction, under its lock where it
 * has one), throws `IllegalTransitionError` to refuse, and returns the columns to change, or null
 * to change nothing. One place for the rules, whatever the store (see `JobStore`).
 */
export type CurrentState = Pick<
  JobRow,
  'status' | 'node' | 'stop_at' | 'stop_by' | 'stop_also_by' | 'stop_forced' | 'hold'
>;
export type Decision = (current: CurrentState) => Updateable<JobRow> | null;

function stopColumns(stop: StopRequest) {
  return { stop_at: toMillis('stop.at', stop.at), stop_by: stop.by, stop_grace_ms: stop.graceMs };
}

/**
 * `JobStore.releaseClaim`: `node`'s claim goes back to its queue, unless a stop was recorded on it
 * (`cancelQueued` records one on a claim, for its launch to carry out): then it is cancelled in the
 * same change, since it never started and must not start later, elsewhere, only to be stopped. A
 * claim that is not `node`'s (released meanwhile and claimed by another) is left as it is.
 */
export function releaseClaimDecision(id: string, node: string): Decision {
  return (current) => {
    assertTransition(id, current.status, 'running');
    if (current.hold !== 'starting' || current.node !== node) return null;
    if (current.stop_at === null) return { hold: null };
    return {
      status: 'cancelled',
      hold: null,
      exit_reason: cancelledBeforeStart(current.stop_by ?? 'a stop'),
      finished_at: current.stop_at,
    };
  };
}

/** `JobStore.cancelQueued`: cancelled with the stop on record; a job being started gets the stop only. */
export function cancelQueuedDecision(id: string, stop: StopRequest, reason: string): Decision {
  const recorded = stopColumns(stop);
  return (current) => {
    assertTransition(id, current.status, 'cancelled');
    const first = current.stop_at === null ? recorded : {};
    if (current.hold === 'starting') return current.stop_at === null ? recorded : null;
    return { ...first, status: 'cancelled', hold: null, exit_reason: reason, finished_at: recorded.stop_at };
  };
}

/**
 * `JobStore.markStopRequested`: the first stop request is recorded; later ones change nothing,
 * but for the first user's stop while the recorded one is the timeout's: it is kept beside it
 * (`StopRequest.alsoBy`), so that the run, which still ends as its timeout decides, is not retried.
 */
export function stopRequestedDecision(id: string, stop: StopRequest): Decision {
  const changes = stopColumns(stop);
  return (current) => {
    assertTransition(id, current.status, current.status === 'queued' ? 'cancelled' : 'stopped');
    if (current.stop_at === null) return changes;
    const overTimeout = current.stop_by === TIMEOUT_STOPPER && stop.by !== TIMEOUT_STOPPER;
    return overTimeout && current.stop_also_by === null ? { stop_also_by: stop.by } : null;
  };
}

/**
 * `JobStore.markFinished` and `markRetried`: the end, as `finishColumns` records it, and with
 * `next` the retry: `retried_as` and a reason that names the attempt, unless a user asked the run
 * to stop (a stop on record or with the finish that is not the timeout's, or one during the
 * timeout's): such a run is never retried, however its retry policy reads. The store inserts
 * `next` only when the job it got back was retried as it. Decided here, in the end's transaction,
 * so that a stop recorded up to the end, by any node, counts. A failure to start
 * (`finish.claimedBy`) is refused with `ClaimLostError` unless the claim still stands (`claimStands`).
 */
export function finishDecision(id: string, finish: JobFinish, next?: Job): Decision {
  if (!isFinal(finish.status)) throw ValidationError.expected('status', 'a final status', finish.status);
  const attempts = next?.spec.retry?.attempts;
  if (next !== undefined && attempts === undefined) {
    throw ValidationError.expected('next.spec.retry', 'the retry policy of the run it retries', null);
  }
  const { claimedBy } = finish;
  return (current) => {
    if (claimedBy !== undefined && !claimStands(current, claimedBy)) throw new ClaimLostError(id, claimedBy);
    assertTransition(id, current.status, finish.status);
    if (next === undefined || askedToStop(current, finish)) return finishColumns(finish, current);
    return finishColumns(finish, current, {
      retried_as: next.id,
      exit_reason: `${finish.exit.reason}; attempt ${next.attempt - 1} of ${attempts}, retried as ${next.id}`,
    });
  };
}

/**
 * Whether the job is still `node`'s to record as failed to start: its claim (queued, being started
 * by `node`), or its start by `node` (the commit of `markStarted` landed, its answer was lost). A
 * claim given back and taken by another node, given back and waiting again, or decided (a lost
 * node's job) is not: recording a failure there would end, or run twice, what another node runs.
 */
function claimStands(current: CurrentState, node: string): boolean {
  if (current.node !== node) return false;
  if (current.status === 'queued') return current.hold === 'starting';
  return current.status === 'running' || current.status === 'paused';
}

/**
 * Whether a user asked the job to stop, by what is on record and what its end brings (a stop, or
 * a user's during the timeout's, that could not be recorded when asked: a full disk).
 */
function askedToStop(current: CurrentState, finish: JobFinish): boolean {
  const by = current.stop_at === null ? finish.stop?.by : current.stop_by;
  const alsoBy = current.stop_also_by ?? finish.stop?.alsoBy;
  return (by != null && by !== TIMEOUT_STOPPER) || alsoBy != null;
}

/** `JobStore.markStopForced`: only while the job runs; a second time changes nothing. */
export function stopForcedDecision(id: string): Decision {
  return (current) => {
    assertTransition(id, current.status, 'stopped');
    return current.stop_forced === 1 ? null : { stop_forced: 1 };
  };
}

/** `JobStore.markPaused`. */
export function pausedDecision(id: string, at: Date): Decision {
  return (current) => {
    assertTransition(id, current.status, 'paused');
    return { status: 'paused', paused_at: toMillis('pausedAt', at) };
  };
}

/** `JobStore.markResumed`: only a paused job resumes (running → running is no move at all). */
export function resumedDecision(id: string): Decision {
  return (current) => {
    if (current.status !== 'paused') throw new IllegalTransitionError(id, current.status, 'running');
    return { status: 'running', paused_at: null };
  };
}
