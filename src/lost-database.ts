import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from './core/clock.ts';
import { ValidationError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import { Cgroups } from './runtime/cgroups.ts';
import { listJobDirs, resetOrphanedJobs } from './runtime/orphaned-jobs.ts';

/** The job database in the data directory. */
export const DATABASE_FILE = 'jobworker.db';

/**
 * Refuses to start on a data directory whose database is gone while job directories remain: a
 * server starting on a new, empty database would show no history and leave every job that still
 * runs an orphan no one can see or stop. With `reset` (`serve --reset-store`) the loss is accepted:
 * every orphaned job's processes are stopped first, and their directories moved aside.
 */
export async function checkForLostDatabase(
  dataDir: string,
  reset: boolean,
  logger: Logger,
  cgroups: () => Cgroups = () => new Cgroups(),
): Promise<void> {
  if (existsSync(join(dataDir, DATABASE_FILE))) return;
  const ids = await listJobDirs(dataDir);
  if (ids.length === 0) return;
  const some = ids.slice(0, 3).join(', ') + (ids.length > 3 ? ', ...' : '');
  if (!reset) {
    throw new ValidationError(
      'dataDir',
      `${join(dataDir, DATABASE_FILE)} is missing, but ${join(dataDir, 'jobs')} holds ${ids.length} job ` +
        `director${ids.length === 1 ? 'y' : 'ies'} (${some}): the job history is gone and some of those ` +
        'jobs may still run. Restore the database from a backup (with the server stopped), or start ' +
        'with `jobworker serve --reset-store` to accept the loss: it stops every process of those jobs ' +
        'first and moves their directories aside.',
    );
  }
  // At the server's start, before any engine (and its clock) exists: the system's time.
  const { killed, movedTo, unreachable } = await resetOrphanedJobs(dataDir, ids, cgroups(), systemClock);
  logger.warn(
    { dataDir, jobs: ids.length, killed: killed.length, movedTo },
    `--reset-store: the database was missing; stopped ${killed.length} orphaned job(s) still running ` +
      `and moved ${ids.length} job director${ids.length === 1 ? 'y' : 'ies'} to ${movedTo}`,
  );
  if (unreachable.length > 0) {
    logger.warn(
      { jobs: unreachable },
      `--reset-store: ${unreachable.length} orphaned job(s) may still run and cannot be found ` +
        '(this host gives jobworker no cgroups): look for them with ps',
    );
  }
}
