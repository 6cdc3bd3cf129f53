import { type Kysely, sql } from 'kysely';

/** Where Kysely's migrator records each migration it applied (its default table name). */
const MIGRATION_TABLE = 'kysely_migration';

/**
 * The job database was migrated by a newer jobworker: it records migrations this build does not
 * know. This build refuses to run on it rather than guess: there is no rule that older code keeps
 * working on a newer schema.
 */
export class NewerSchemaError extends Error {
  override name = 'NewerSchemaError';
  /** The newest migration this build knows. */
  readonly newestKnown: string;
  /** The migrations the database has that this build does not know, in name order. */
  readonly unknown: readonly string[];

  constructor(database: string, newestKnown: string, unknown: readonly string[]) {
    super(
      `The job database ${database} was migrated by a newer jobworker: it has ${unknown.length === 1 ? 'migration' : 'migrations'} ${unknown.join(', ')}, which this jobworker does not know (the newest it knows is ${newestKnown}). ` +
        'This jobworker cannot run on it: upgrade it to the version that migrated the database, or a later one, and start that. ' +
        'To go back to this version, restore the backup of the database taken before the upgrade (docs/storage.md, "Migrations").',
    );
    this.newestKnown = newestKnown;
    this.unknown = unknown;
  }
}

/**
 * Throws `NewerSchemaError` when the database at `db` has applied a migration `known` does not
 * hold. Read before migrating: Kysely's migrator would otherwise fail with "corrupted migrations:
 * previously executed migration ... is missing", which tells an operator nothing of what to do.
 * `tableExists` says whether the migration table is there (a new database has none yet).
 */
export async function refuseNewerSchema(
  db: Kysely<unknown>,
  known: Readonly<Record<string, unknown>>,
  database: string,
  tableExists: (db: Kysely<unknown>) => Promise<boolean>,
): Promise<void> {
  if (!(await tableExists(db))) return;
  const { rows } = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(db);
  const unknown = rows
    .map((r) => r.name)
    .filter((name) => !Object.hasOwn(known, name))
    .sort();
  if (unknown.length === 0) return;
  const newestKnown = Object.keys(known).sort().at(-1) ?? '(none)';
  throw new NewerSchemaError(database, newestKnown, unknown);
}

/** `tableExists` for SQLite. */
export async function sqliteHasMigrationTable(db: Kysely<unknown>): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`select count(*) as n from sqlite_master
    where type = 'table' and name = ${MIGRATION_TABLE}`.execute(db);
  return Number(rows[0]?.n ?? 0) > 0;
}

/** `tableExists` for PostgreSQL: found as the migrator finds it, through the search path. */
export async function postgresHasMigrationTable(db: Kysely<unknown>): Promise<boolean> {
  const { rows } = await sql<{
    present: boolean;
  }>`select to_regclass(${MIGRATION_TABLE}) is not null as present`.execute(db);
  return rows[0]?.present === true;
}
