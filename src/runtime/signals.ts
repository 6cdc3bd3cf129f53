import { constants } from 'node:os';
import { readProcStat } from './process-identity.ts';

const BY_NUMBER = new Map<number, string>();
for (const [name, num] of Object.entries(constants.signals)) {
  if (!BY_NUMBER.has(num)) BY_NUMBER.set(num, name);
}

/** `SIGTERM` for 15, or undefined for a number that is not a signal. */
export function signalName(num: number): string | undefined {
  return BY_NUMBER.get(num);
}

/** Sends a signal, returning false when the target no longer exists. */
export function sendSignal(pidOrNegativePgid: number, signal: NodeJS.Signals | 0): boolean {
  // 0, 1 and -1 mean "my group", init and "everyone": never a job's processes.
  if (!Number.isInteger(pidOrNegativePgid) || Math.abs(pidOrNegativePgid) <= 1) {
    throw new RangeError(`Refusing to signal ${pidOrNegativePgid}`);
  }
  try {
    process.kill(pidOrNegativePgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** True while any process of the group exists. */
export function groupExists(pgid: number): boolean {
  if (pgid <= 1) return false;
  try {
    return sendSignal(-pgid, 0);
  } catch (err) {
    // EPERM: members exist but belong to someone else; they still exist.
    if ((err as NodeJS.ErrnoException).code === 'EPERM') return true;
    throw err;
  }
}

/**
 * Signals a job's process group, which its main process `pid` leads, and that process itself too
 * when it is no longer in the group. Since the spawner makes each job's process lead a session of
 * its own it cannot leave the group; a job started by a spawner before that shared its wrapper's
 * session, and could move into the wrapper's group (`setpgid`), where a signal to its own group
 * never reached it. Only after the caller checked that `pid` is still the job's process.
 */
export function signalJob(pid: number, signal: NodeJS.Signals): void {
  sendSignal(-pid, signal);
  const stat = readProcStat(pid);
  if (stat !== undefined && stat.pgid !== pid) sendSignal(pid, signal);
}
