import { closeSync, openSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { Kysely } from 'kysely';
import type { StoreSchema } from '../schema.ts';
import { NodeSqliteDatabase } from './node-sqlite-database.ts';
import { NodeSqliteDialect } from './node-sqlite-dialect.ts';

/** How long a statement waits for another connection's write lock before failing with SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** WAL pages past which a commit copies the WAL into the database (see PRAGMAS). */
export const WAL_CHECKPOINT_PAGES = 8000;

/**
 * Durability and integrity settings, applied on every connection.
 * - WAL: readers never block the writer nor the writer readers; one fsync per checkpoint, not per commit.
 * - synchronous=NORMAL: with WAL a commit survives a crash of the process; a power cut may lose the
 *   last commits but never corrupts the database.
 * - journal_size_limit: the WAL file shrinks back to 64 MiB after a burst of writes.
 * - temp_store=memory: statement journals (a statement inside a batch's transaction that may have
 *   to be undone alone) and sort files in memory, not in files created and deleted in /var/tmp
 *   on the event loop.
 * - wal_autocheckpoint: SQLite copies the WAL into the database (and fsyncs both) inside the
 *   commit that takes the WAL past this many pages, on the event loop. At the default 1,000 a
 *   burst of starts paid for one every ~100 jobs, each copying the same hot index pages again;
 *   at 8,000 pages (~32 MB of WAL) it copies them once where it copied them eight times
 *   (`npm run bench -- start-rate`, a CPU profile of the server: commits 713 -> 411 ms over 7,000
 *   starts, against 385 ms with no checkpoint at all). The price: a page a reader looks for
 *   is searched in two of the WAL's 4,096-frame hash indexes instead of one, a WAL file of up to
 *   ~32 MB (under journal_size_limit, so it stays that size while the server runs), and up to
 *   8,000 pages of commits not yet fsynced (the memory relief checkpoints once the server is
 *   quiet: SqliteJobStore.releaseMemory).
 */
const PRAGMAS = [
  'pragma journal_mode = wal',
  'pragma synchronous = normal',
  `pragma busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`,
  'pragma foreign_keys = on',
  `pragma journal_size_limit = ${64 * 1024 * 1024}`,
  'pragma temp_store = memory',
  `pragma wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`,
];

/** Opens (creating if needed) the SQLite file at `path` as a Kysely instance over `node:sqlite`. */
export function openSqliteConnection(path: string): Kysely<StoreSchema> {
  return openSqliteWithConnection(path).db;
}

/**
 * `openSqliteConnection`, with the wrapped connection Kysely drives (`connection`): the store's
 * write batch runs its savepoints and one-statement units on it directly, inside the transaction
 * Kysely holds (see `WriteBatch`).
 */
export function openSqliteWithConnection(path: string): {
  db: Kysely<StoreSchema>;
  connection: NodeSqliteDatabase;
} {
  // Created owner-only (it holds every job's spec, environment values included); SQLite would
  // use the umask, and gives the -wal and -shm files the mode of the database file.
  if (path !== ':memory:') closeSync(openSync(path, 'a', 0o600));
  const db = new DatabaseSync(path);
  try {
    for (const pragma of PRAGMAS) db.exec(pragma);
    const mode = db.prepare('pragma journal_mode').get()?.journal_mode;
    if (mode !== 'wal' && path !== ':memory:') {
      throw new Error(
        `Expected SQLite database ${path} to be in WAL mode, but it is in ${String(mode)} mode`,
      );
    }
  } catch (error) {
    db.close();
    throw error;
  }
  const connection = new NodeSqliteDatabase(db);
  return { db: new Kysely<StoreSchema>({ dialect: new NodeSqliteDialect(connection) }), connection };
}
