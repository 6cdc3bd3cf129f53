import { existsSync } from 'node:fs';
import { readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { ProcessIdentity } from '../core/job.ts';
import type { Cgroups } from './cgroups.ts';
import { EXIT_FILE } from './exit-record.ts';
import { readIdentityFile, UNRECORDED_FILE, unknownIdentity } from './identity-file.ts';
import { isSameProcessAlive } from './process-identity.ts';
import { stopProcesses } from './stop-processes.ts';

/**
 * Job directories whose database is gone. Without the database nothing records that these jobs
 * exist, what they ran or whether they still run: a server starting on an empty database would
 * leave any that still run as orphans nobody can see or stop.
 */

/** The ids of the job directories under `<dataDir>/jobs` (none when it does not exist). */
export async function listJobDirs(dataDir: string): Promise<string[]> {
  const entries = await readdir(join(dataDir, 'jobs'), { withFileTypes: true }).catch(
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    },
  );
  return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
}

export interface OrphanReset {
  /** Jobs whose processes were found running and were killed. */
  readonly killed: string[];
  /** Where the job directories were moved. */
  readonly movedTo: string;
  /** Jobs that may still run but that nothing can find (no cgroup, no recorded identity, no exit record). */
  readonly unreachable: string[];
}

/**
 * Ends every process of each orphaned job, then moves `jobs/` aside to `jobs.orphaned-<time>`
 * (kept for an operator to look at, or delete). A job's processes are found by its cgroups,
 * named after its id under jobworker's cgroup root, and by the identity its wrapper recorded in
 * the job directory's `process` file (or `process.unrecorded`) where there is one; on a host without cgroups and without
 * that file nothing can find them, and `unreachable` names them.
 */
export async function resetOrphanedJobs(
  dataDir: string,
  ids: readonly string[],
  cgroups: Cgroups,
  clock: Clock,
): Promise<OrphanReset> {
  // Named for when the reset began, not for when its last kill was done.
  const began = clock.now();
  const killed: string[] = [];
  const unreachable: string[] = [];
  for (const id of ids) {
    const dirs = cgroups.existing(id);
    const dir = join(dataDir, 'jobs', id);
    // A job whose start could not be recorded was being stopped when its server died: found alike.
    const recorded = (
      (await readIdentityFile(dir, dirs).catch(() => undefined)) ??
      (await readIdentityFile(dir, dirs, UNRECORDED_FILE).catch(() => undefined))
    )?.identity;
    if (dirs.length === 0 && !recorded && !existsSync(join(dir, EXIT_FILE))) {
      unreachable.push(id);
    }
    const identity: ProcessIdentity = recorded ?? unknownIdentity(dirs);
    const running =
      (dirs.length > 0 && !cgroups.isEmpty(dirs)) || (recorded !== undefined && isSameProcessAlive(recorded));
    // No grace: nothing supervises these jobs, nothing can record how they end.
    const { forced } = await stopProcesses(identity, cgroups, 0, false, clock);
    if (running || forced) killed.push(id);
    cgroups.remove(dirs);
  }
  const movedTo = join(dataDir, `jobs.orphaned-${began.toISOString().replaceAll(':', '-')}`);
  await rename(join(dataDir, 'jobs'), movedTo);
  return { killed, movedTo, unreachable };
}
