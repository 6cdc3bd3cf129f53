import type { Updateable } from 'kysely';
import { IllegalTransitionError } from '../core/errors.ts';
import type { StopRequest } from '../core/job.ts';
import { assertTransition, cancelledBeforeStart } from '../core/states.ts';
import { toMillis } from './job-row.ts';
import type { JobRow } from './schema.ts';

/**
 * The state changes every store makes, as decisions over the columns its checks read: each
 * takes the job's current state (read inside the store's transaction, under its lock where it
 * has one), throws `IllegalTransitionError` to refuse, and returns the columns to change, or null
 * to change nothing. One place for the rules, whatever the store (see `JobStore`).
 */
export type CurrentState = Pick<JobRow, 'status' | 'node' | 'stop_at' | 'stop_by' | 'stop_forced' | 'hold'>;
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

/** `JobStore.markStopRequested`: the first stop request is recorded; later ones change nothing. */
export function stopRequestedDecision(id: string, stop: StopRequest): Decision {
  const changes = stopColumns(stop);
  return (current) => {
    assertTransition(id, current.status, current.status === 'queued' ? 'cancelled' : 'stopped');
    return current.stop_at === null ? changes : null;
  };
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
