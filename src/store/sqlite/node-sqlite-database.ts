import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';
import { sqliteStorageError } from './sqlite-storage-error.ts';

/**
 * Kysely's built-in `SqliteDialect` drives a better-sqlite3-shaped database: `prepare(sql)` returning
 * a statement with a `reader` flag and methods taking the parameters as one array. `node:sqlite`
 * (built into Node, so no native dependency to build) spreads its parameters and has no `reader`,
 * so this wraps a `DatabaseSync` to that shape.
 *
 * Kysely calls `prepare` for every query it runs, and preparing costs as much as running a small
 * query, so statements are cached by SQL text. The cache is bounded (least recently used goes
 * first) because query shapes vary with filters, and the server's heap must stay small.
 *
 * A statement that fails because the disk is full throws `InsufficientStorageError`, one that
 * waited out the busy timeout `SqliteBusyError` (see `sqliteStorageError`): every query of the
 * store goes through here, so none reports either as internal.
 */
export class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #capacity: number;
  readonly #statements = new Map<string, CachedStatement>();
  /** The database file, named in errors. */
  readonly #path: string;

  constructor(db: DatabaseSync, options: { statementCacheSize?: number } = {}) {
    this.#db = db;
    this.#path = db.location() ?? ':memory:';
    this.#capacity = options.statementCacheSize ?? 200;
  }

  /** True while a transaction is open: SQLite ends one by itself when a write fails for lack of space. */
  get inTransaction(): boolean {
    return this.#db.isOpen && this.#db.isTransaction;
  }

  /** The wrapped connection, for what Kysely does not cover (pragmas). */
  get connection(): DatabaseSync {
    return this.#db;
  }

  /** How many prepared statements are cached now. */
  get cachedStatements(): number {
    return this.#statements.size;
  }

  /**
   * Called at every statement (each goes through `prepare`): what keeps the checkpoint helper's
   * ticks going while the store is used, and lets them stop while it is not (`WalCheckpointer`).
   */
  onUse: (() => void) | undefined;

  prepare(sql: string): SqliteStatement {
    this.onUse?.();
    const cached = this.#statements.get(sql);
    if (cached !== undefined) {
      // Re-insert so that Map order is least recently used first.
      this.#statements.delete(sql);
      this.#statements.set(sql, cached);
      return cached;
    }
    let prepared: StatementSync;
    try {
      // Preparing reads the schema, which another process's lock can hold up too.
      prepared = this.#db.prepare(sql);
    } catch (err) {
      throw sqliteStorageError(err, this.#path);
    }
    const statement = new CachedStatement(prepared, this.#path);
    this.#statements.set(sql, statement);
    if (this.#statements.size > this.#capacity) {
      const oldest = this.#statements.keys().next();
      if (oldest.done !== true) this.#statements.delete(oldest.value);
    }
    return statement;
  }

  /**
   * Runs `sql` at once on the connection, through the statement cache: its rows, or none for a
   * statement without result columns (no count of changed rows: callers use `returning`).
   * Bypasses Kysely and its turn on the connection, so it is for a caller that already holds that
   * turn: inside a transaction Kysely runs (see `WriteBatch`).
   */
  runNow(sql: string, parameters: readonly unknown[]): unknown[] {
    // Outside a transaction nobody holds the connection's turn (and a savepoint would begin one).
    if (!this.inTransaction) throw new Error(`runNow outside a transaction: ${sql}`);
    const statement = this.prepare(sql);
    if (statement.reader) return statement.all(parameters);
    statement.run(parameters);
    return [];
  }

  close(): void {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
  }
}

class CachedStatement implements SqliteStatement {
  readonly reader: boolean;
  readonly #statement: StatementSync;
  readonly #path: string;

  constructor(statement: StatementSync, path: string) {
    this.#statement = statement;
    this.#path = path;
    // A statement returns rows when it has result columns (SELECT, PRAGMA, ... RETURNING).
    this.reader = statement.columns().length > 0;
  }

  all(parameters: readonly unknown[]): unknown[] {
    try {
      return this.#statement.all(...(parameters as SQLInputValue[]));
    } catch (err) {
      throw sqliteStorageError(err, this.#path);
    }
  }

  run(parameters: readonly unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint } {
    try {
      return this.#statement.run(...(parameters as SQLInputValue[]));
    } catch (err) {
      throw sqliteStorageError(err, this.#path);
    }
  }

  iterate(parameters: readonly unknown[]): IterableIterator<unknown> {
    try {
      return this.#statement.iterate(...(parameters as SQLInputValue[]));
    } catch (err) {
      throw sqliteStorageError(err, this.#path);
    }
  }
}
