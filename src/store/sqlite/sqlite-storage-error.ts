import { InsufficientStorageError, JobworkerError } from '../../core/errors.ts';

/** SQLite's primary result code for "database or disk is full" (extended codes keep it in the low byte). */
const SQLITE_FULL = 13;
/** Another connection holds the lock this needed (past the busy timeout), or the table it needs. */
const SQLITE_BUSY = 5;

/**
 * Another process holds the job database's write lock for longer than the busy timeout (a
 * `sqlite3` shell with a transaction open, a backup tool, a second server pointed at the same
 * file). It heals once that process lets go: `STORE_UNAVAILABLE`, as PostgreSQL's lock timeout.
 */
export class SqliteBusyError extends JobworkerError {
  static override readonly errorName = 'SqliteBusyError';
  constructor(message: string, options?: ErrorOptions) {
    super('STORE_UNAVAILABLE', message, options);
  }
}

/**
 * `err` as the store reports it: SQLite's SQLITE_FULL becomes an `InsufficientStorageError` that
 * names the database file and keeps SQLite's own words, so that a client gets 507 with the real
 * cause instead of 500; SQLITE_BUSY (another process holds the database) becomes a `SqliteBusyError` (503: try again);
 * not SQLITE_LOCKED, a conflict inside this connection that no wait clears.
 * SQLite has already rolled the statement's transaction back by then where it had to (see
 * `NodeSqliteDialect`), so nothing of the write is left. Any other error is returned as it is.
 */
export function sqliteStorageError(err: unknown, path: string): unknown {
  const { errcode, errstr } = (err ?? {}) as { errcode?: unknown; errstr?: unknown };
  if (typeof errcode !== 'number') return err;
  const primary = errcode & 0xff;
  if (primary === SQLITE_FULL) {
    const cause = typeof errstr === 'string' ? errstr : 'database or disk is full';
    return new InsufficientStorageError(
      `Cannot write to the job database ${path}: ${cause} (SQLITE_FULL); free space on its filesystem and try again`,
      { cause: err },
    );
  }
  // Not SQLITE_LOCKED: a conflict inside this one connection, which waiting never clears.
  if (primary === SQLITE_BUSY) {
    const cause = typeof errstr === 'string' ? errstr : 'database is locked';
    return new SqliteBusyError(
      `The job database ${path} is busy: ${cause} (SQLITE_BUSY); another process holds it locked (a transaction open in a sqlite3 shell, a backup, a second server on the same file): try again once it lets go`,
      { cause: err },
    );
  }
  return err;
}
