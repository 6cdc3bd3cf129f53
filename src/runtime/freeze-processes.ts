import type { ProcessIdentity } from '../core/job.ts';
import type { Cgroups } from './cgroups.ts';
import { isSameProcessAlive } from './process-identity.ts';
import { signalJob } from './signals.ts';

/**
 * Freezes or thaws every process of a job, so that a paused job uses no CPU. With a cgroup the
 * kernel freezer holds the whole tree, escapees included; without one, SIGSTOP/SIGCONT go to the
 * process group, which misses processes that left it (setsid): the weaker guarantee of hosts
 * without cgroups. The recorded identity is checked first, so a reused pid is never signalled.
 */
export function freezeProcesses(identity: ProcessIdentity, cgroups: Cgroups, frozen: boolean): void {
  if (identity.cgroups.length > 0 && cgroups.freeze(identity.cgroups, frozen)) return;
  if (isSameProcessAlive(identity)) signalJob(identity.pid, frozen ? 'SIGSTOP' : 'SIGCONT');
}
