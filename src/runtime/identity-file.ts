import { lstatSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { childPath } from '../core/child-path.ts';
import type { ProcessIdentity } from '../core/job.ts';
import { readRecordFile } from './record-file.ts';

/**
 * The file in a job's directory where its wrapper records who the job's processes are, before
 * the command is executed: a server that died between the spawn and recording the start finds
 * the job by it (pid + start time + boot id, never a pid alone).
 * Format: "JOB_PID JOB_TICKS WRAPPER_PID WRAPPER_TICKS BOOT_ID\n", written by tmp + rename.
 */
export const IDENTITY_FILE = 'process';

/**
 * The identity file once the job's start could not be recorded and the server stopped it
 * (`markUnrecorded`): a later server must not adopt such a job, since its end would then be
 * recorded as any run's, and a retry policy would run its command again.
 */
export const UNRECORDED_FILE = 'process.unrecorded';

/**
 * The identity of a job whose processes are not known (no record of them, or one that cannot be
 * read): no process to signal, only its cgroups `cgroups`, if it has any, to end.
 */
export function unknownIdentity(cgroups: readonly string[]): ProcessIdentity {
  return { pid: 0, startTicks: -1, bootId: '', cgroups: [...cgroups] };
}

/** The job's identity as its wrapper recorded it, with when; undefined when there is none. */
export async function readIdentityFile(
  dir: string,
  cgroups: readonly string[],
  file: typeof IDENTITY_FILE | typeof UNRECORDED_FILE = IDENTITY_FILE,
): Promise<{ identity: ProcessIdentity; at: Date } | undefined> {
  const record = await readRecordFile(childPath(dir, file));
  if (!record) return undefined;
  const { line, at } = record;
  const [pid, startTicks, wrapperPid, wrapperTicks, bootId] = line.split(' ');
  const numbers = [pid, startTicks, wrapperPid, wrapperTicks].map(Number);
  if (!bootId || !numbers.every((n) => Number.isInteger(n) && n > 0)) {
    return undefined;
  }
  const [p, t, wp, wt] = numbers as [number, number, number, number];
  return {
    identity: { pid: p, startTicks: t, bootId, cgroups: [...cgroups], wrapper: { pid: wp, startTicks: wt } },
    at,
  };
}

/**
 * Marks the job in `dir` as begun, with a start that could not be recorded (`UNRECORDED_FILE`).
 * A rename, so that it is on disk even when the disk is full (which is why a start may not be
 * recordable in the first place): it needs no new data blocks on most file systems.
 */
export async function markUnrecorded(dir: string): Promise<void> {
  await rename(join(dir, IDENTITY_FILE), join(dir, UNRECORDED_FILE));
}

/**
 * Whether the job in `dir` was marked unrecorded (`markUnrecorded`). The mark's being there is
 * what counts, whatever it holds: a job so marked must not be adopted and run again.
 */
export function isMarkedUnrecorded(dir: string): boolean {
  // A synchronous lstat (microseconds) like the record reads': one look per job at a restart,
  // without a trip through the thread pool each. A link the job planted counts as a mark too.
  return lstatSync(join(dir, UNRECORDED_FILE), { throwIfNoEntry: false }) !== undefined;
}
