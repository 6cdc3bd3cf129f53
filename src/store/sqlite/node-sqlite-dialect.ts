import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import type { NodeSqliteDatabase } from './node-sqlite-database.ts';

/**
 * Kysely's SQLite dialect with two changes, both about transactions:
 *
 * - Transactions start with `BEGIN IMMEDIATE`, taking the write lock up front. A plain
 *   (deferred) `BEGIN` that reads and then writes fails with SQLITE_BUSY, busy timeout or not,
 *   when another connection wrote in between; every transaction of the store reads a status
 *   and then writes, so each must hold the lock from its first read.
 * - SQLite's DDL is transactional, so the migrator runs all pending migrations in one
 *   transaction: a crash half way leaves the schema as it was.
 * - A rollback is issued only while a transaction is open. On some errors (SQLITE_FULL above
 *   all) SQLite rolls the transaction back itself; a ROLLBACK then fails with "cannot rollback -
 *   no transaction is active", and Kysely would throw that instead of the error that mattered.
 */
export class NodeSqliteDialect implements Dialect {
  readonly #database: NodeSqliteDatabase;

  constructor(database: NodeSqliteDatabase) {
    this.#database = database;
  }

  createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#database);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  readonly #database: NodeSqliteDatabase;

  constructor(database: NodeSqliteDatabase) {
    super({ database });
    this.#database = database;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#database.inTransaction) await super.rollbackTransaction(connection);
  }
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}
