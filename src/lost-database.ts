import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from './core/clock.ts';
import { ValidationError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import { Cgroups } from './runtime/cgroups.ts';
import { listJobDirs, resetOrphanedJobs } from './runtime/orphaned-jobs.ts';

/** The job database in the data directory. */
export const DATABASE_FILE = 'jobworker.db';

/** How the one opening the data directory accepts the loss of its database, as it tells it. */
export interface LossAcceptance {
  /** Its name, at the head of the warnings it logs: `--reset-store`. */
  readonly name: string;
  /** What the refusal tells to do: "start with `jobworker serve --reset-store`". */
  readonly howTo: string;
}

/** `jobworker serve --reset-store`. */
export const SERVE_RESET_STORE: LossAcceptance = {
  name: '--reset-store',
  howTo: 'start with `jobworker serve --reset-store`',
};

/**
 * Refuses to open a data directory whose database is gone while job directories remain: a server
 * (or Worker) opening a new, empty database would show no history and leave every job that still
 * runs an orphan no one can see or stop. Gone is missing, or an empty file (0 bytes, no
 * write-ahead log beside it), which SQLite would take for a new database as well. With `reset`
 * the loss is accepted: every orphaned job's processes are stopped first, and their directories
 * moved aside. Called under the data directory's lock, before the database is opened (which would
 * make it).
 */
export async function checkForLostDatabase(
  dataDir: string,
  reset: boolean,
  logger: Logger,
  acceptance: LossAcceptance = SERVE_RESET_STORE,
  cgroups: () => Cgroups = () => new Cgroups(),
): Promise<void> {
  const database = join(dataDir, DATABASE_FILE);
  const lost = await howLost(database);
  if (lost === undefined) return;
  const ids = await listJobDirs(dataDir);
  if (ids.length === 0) return;
  const some = ids.slice(0, 3).join(', ') + (ids.length > 3 ? ', ...' : '');
  const dirs = `${ids.length} job director${ids.length === 1 ? 'y' : 'ies'}`;
  if (!reset) {
    throw new ValidationError(
      'dataDir',
      `${database} is ${lost}, but ${join(dataDir, 'jobs')} holds ${dirs} (${some}): the job history is ` +
        'gone and some of those jobs may still run. Restore the database from a backup (with no server ' +
        `or Worker using the directory), or ${acceptance.howTo} to accept the loss: it stops every ` +
        'process of those jobs first and moves their directories aside.',
    );
  }
  // Before any engine (and its clock) exists: the system's time.
  const { killed, movedTo, unreachable } = await resetOrphanedJobs(dataDir, ids, cgroups(), systemClock);
  logger.warn(
    { dataDir, jobs: ids.length, killed: killed.length, movedTo },
    `${acceptance.name}: the database was ${lost}; stopped ${killed.length} orphaned job(s) still running ` +
      `and moved ${dirs} to ${movedTo}`,
  );
  if (unreachable.length > 0) {
    logger.warn(
      { jobs: unreachable },
      `${acceptance.name}: ${unreachable.length} orphaned job(s) may still run and cannot be found ` +
        '(this host gives jobworker no cgroups): look for them with ps',
    );
  }
}

/**
 * `missing`, or `empty` (0 bytes, with no write-ahead log that would hold its pages), or undefined
 * for a database that is there.
 */
async function howLost(database: string): Promise<'missing' | 'empty (0 bytes)' | undefined> {
  const size = async (path: string) =>
    stat(path).then(
      (s) => s.size,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      },
    );
  const main = await size(database);
  if (main === undefined) return 'missing';
  if (main > 0) return undefined;
  return ((await size(`${database}-wal`)) ?? 0) > 0 ? undefined : 'empty (0 bytes)';
}
