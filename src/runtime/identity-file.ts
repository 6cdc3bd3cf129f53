import { join } from 'node:path';
import type { ProcessIdentity } from '../core/job.ts';
import { readRecordFile } from './record-file.ts';

/**
 * The file in a job's directory where its wrapper records who the job's processes are, before
 * the command is executed: a server that died between the spawn and recording the start finds
 * the job by it (pid + start time + boot id, never a pid alone).
 * Format: "JOB_PID JOB_TICKS WRAPPER_PID WRAPPER_TICKS BOOT_ID\n", written by tmp + rename.
 */
export const IDENTITY_FILE = 'process';

/** The job's identity as its wrapper recorded it, with when; undefined when there is none. */
export async function readIdentityFile(
  dir: string,
  cgroups: readonly string[],
): Promise<{ identity: ProcessIdentity; at: Date } | undefined> {
  const record = await readRecordFile(join(dir, IDENTITY_FILE));
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
