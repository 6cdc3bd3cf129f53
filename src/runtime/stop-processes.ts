import { type Clock, clockDeadline } from '../core/clock.ts';
import type { ProcessIdentity } from '../core/job.ts';
import type { Cgroups } from './cgroups.ts';
import { pauseBetweenLooks } from './kernel-poll.ts';
import { isSameProcessAlive } from './process-identity.ts';
import { groupExists, sendSignal, signalJob } from './signals.ts';

export interface StopResult {
  /** True when something outlived the grace period and had to be killed. */
  readonly forced: boolean;
}

/**
 * Ends every process of a job: SIGTERM to its process group, up to `graceMs` for them to
 * exit, then SIGKILL to everything in its cgroup (escapees from the group included) or,
 * on a host without cgroups, to the group. Resolves once nothing of the job remains.
 * The recorded identity is checked before each signal to the group, so a reused pid is
 * never signalled. The grace, and each 30 s wait for a kill to take, are timed on `clock`.
 */
export async function stopProcesses(
  identity: ProcessIdentity,
  cgroups: Cgroups,
  graceMs: number,
  groupIsOurs: boolean,
  clock: Clock,
): Promise<StopResult> {
  const { pid } = identity;
  const dirs = identity.cgroups;
  if (isSameProcessAlive(identity)) signalJob(pid, 'SIGTERM');
  if (await allGone(identity, cgroups, graceMs, groupIsOurs, clock)) return { forced: false };
  // A stop is done only when nothing of the job is left: a process the kill has not ended yet
  // (one in uninterruptible sleep, say) is killed again until it is gone.
  do {
    if (dirs.length > 0) cgroups.killAll(dirs);
    else if (isSameProcessAlive(identity)) signalJob(pid, 'SIGKILL');
    else if (groupIsOurs && groupExists(pid)) sendSignal(-pid, 'SIGKILL');
  } while (!(await allGone(identity, cgroups, KILL_WAIT_MS, groupIsOurs, clock)));
  return { forced: true };
}

/**
 * How long a kill is given to take before it is sent again (or, for leftovers, given up on), on
 * the caller's clock: on a test's manual clock, only once the test moves it on.
 */
const KILL_WAIT_MS = 30_000;

/**
 * Kills whatever a job left behind after its wrapper ended (its main process included, when a
 * killed wrapper left it running). Without cgroups only the process group can be found: through
 * its leader when that is still the recorded process, otherwise only while `groupIsOurs`: right
 * after we saw the wrapper end (a pgid is not reused while any member lives), not after a restart.
 */
export async function killLeftovers(
  identity: ProcessIdentity,
  cgroups: Cgroups,
  groupIsOurs: boolean,
  clock: Clock,
): Promise<boolean> {
  const dirs = identity.cgroups;
  if (dirs.length > 0) {
    // Not known empty (one that cannot be read, at the descriptor limit say): killed and waited
    // for, rather than its end recorded while it may still run, or the recording failing.
    if (cgroups.knownEmpty(dirs)) return false;
    await killCgroups(dirs, cgroups, clock);
    return true;
  }
  if (identity.pid <= 1) return false;
  if (isSameProcessAlive(identity)) signalJob(identity.pid, 'SIGKILL');
  else if (groupIsOurs && groupExists(identity.pid)) sendSignal(-identity.pid, 'SIGKILL');
  else return false;
  // As with a cgroup: the end is recorded once they are gone, not while they are still dying.
  await allGone(identity, cgroups, KILL_WAIT_MS, groupIsOurs, clock);
  return true;
}

/**
 * Ends at once everything left of a run no server supervises (found after a restart): its
 * recorded process, what is left in its cgroups, or its process group through that process only,
 * the group no longer being known to be its own (a pgid may be reused once its members are gone).
 */
export async function endUnsupervised(
  identity: ProcessIdentity,
  cgroups: Cgroups,
  clock: Clock,
): Promise<void> {
  await stopProcesses(identity, cgroups, 0, false, clock);
  await killLeftovers(identity, cgroups, false, clock);
}

/**
 * Kills a job's wrapper, which is in neither the job's process group nor its cgroups, and waits
 * for it to be gone, for at most `KILL_WAIT_MS` on `clock`: for a run whose directory is removed
 * next, into which a wrapper left running would write the job's exit record (by its path, once
 * the job's processes are gone). True once it is gone (or was already).
 */
export async function killWrapper(
  identity: ProcessIdentity,
  cgroups: Cgroups,
  clock: Clock,
): Promise<boolean> {
  if (!identity.wrapper) return true;
  const wrapper = { ...identity.wrapper, bootId: identity.bootId, cgroups: [] };
  if (!isSameProcessAlive(wrapper)) return true;
  sendSignal(wrapper.pid, 'SIGKILL');
  return allGone(wrapper, cgroups, KILL_WAIT_MS, false, clock);
}

/**
 * SIGKILLs every process in `dirs` (a job's cgroups) and waits for them to empty, for at most
 * `KILL_WAIT_MS` on `clock`; true once they are empty. For what was made for a job whose identity
 * is not known (a claim cut short by a crash), as for a job's leftovers.
 */
export async function killCgroups(dirs: readonly string[], cgroups: Cgroups, clock: Clock): Promise<boolean> {
  cgroups.killAll(dirs);
  return whenEmptyWithin(dirs, cgroups, KILL_WAIT_MS, clock);
}

async function whenEmptyWithin(
  dirs: readonly string[],
  cgroups: Cgroups,
  timeoutMs: number,
  clock: Clock,
): Promise<boolean> {
  const deadline = clockDeadline(clock, timeoutMs);
  try {
    return await cgroups.whenEmpty(dirs, deadline.signal).then(
      () => true,
      () => false,
    );
  } finally {
    deadline.clear();
  }
}

/** Whether nothing of the job is left within `timeoutMs` on `clock`. */
async function allGone(
  identity: ProcessIdentity,
  cgroups: Cgroups,
  timeoutMs: number,
  groupIsOurs: boolean,
  clock: Clock,
): Promise<boolean> {
  if (identity.cgroups.length > 0) return whenEmptyWithin(identity.cgroups, cgroups, timeoutMs, clock);
  const deadline = clockDeadline(clock, timeoutMs);
  try {
    // No cgroup: no notification exists for "process group empty", so look every 20 ms.
    // A group whose leader we did not see exit may be someone else's by now: judge by the leader.
    while (!deadline.signal.aborted) {
      if (!isSameProcessAlive(identity) && !(groupIsOurs && groupExists(identity.pid))) return true;
      await pauseBetweenLooks(20);
    }
    return false;
  } finally {
    deadline.clear();
  }
}
