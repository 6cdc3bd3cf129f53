import { InsufficientStorageError } from '../../core/errors.ts';

/** SQLite's primary result code for "database or disk is full" (extended codes keep it in the low byte). */
const SQLITE_FULL = 13;

/**
 * `err` as the store reports it: SQLite's SQLITE_FULL becomes an `InsufficientStorageError` that
 * names the database file and keeps SQLite's own words, so that a client gets 507 with the real
 * cause instead of 500. SQLite has already rolled the statement's transaction back by then
 * (see `NodeSqliteDialect`), so nothing of the write is left. Any other error is returned as it is.
 */
export function sqliteStorageError(err: unknown, path: string): unknown {
  const { errcode, errstr } = (err ?? {}) as { errcode?: unknown; errstr?: unknown };
  if (typeof errcode !== 'number' || (errcode & 0xff) !== SQLITE_FULL) return err;
  const cause = typeof errstr === 'string' ? errstr : 'database or disk is full';
  return new InsufficientStorageError(
    `Cannot write to the job database ${path}: ${cause} (SQLITE_FULL); free space on its filesystem and try again`,
    { cause: err },
  );
}
