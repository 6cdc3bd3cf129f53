import { constants } from 'node:os';

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
