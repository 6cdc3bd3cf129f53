import type { Kysely } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';
import { refuseNewerSchema, sqliteHasMigrationTable } from '../newer-schema.ts';
import * as jobs from './migrations/0001-jobs.ts';
import * as queues from './migrations/0002-queues.ts';
import * as dedupeScope from './migrations/0003-dedupe-scope.ts';
import * as retention from './migrations/0004-retention.ts';
import * as users from './migrations/0005-users.ts';
import * as taskResults from './migrations/0006-task-results.ts';
import * as limits from './migrations/0007-limits.ts';
import * as webhooks from './migrations/0008-webhooks.ts';
import * as isolationDefaults from './migrations/0009-isolation-defaults.ts';
import * as listFilters from './migrations/0010-list-filters.ts';
import * as outboxSnapshots from './migrations/0011-outbox-snapshots.ts';
import * as deliveryClaims from './migrations/0012-delivery-claims.ts';
import * as stopAlsoBy from './migrations/0013-stop-also-by.ts';
import * as forgetUnusedQueues from './migrations/0014-forget-unused-queues.ts';

/**
 * Every migration, by name. Names sort in the order they run (Kysely's migrator sorts them), and
 * they come from code rather than a folder scan so that nothing depends on the working directory.
 */
export const SQLITE_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-jobs': jobs,
  '0002-queues': queues,
  '0003-dedupe-scope': dedupeScope,
  '0004-retention': retention,
  '0005-users': users,
  '0006-task-results': taskResults,
  '0007-limits': limits,
  '0008-webhooks': webhooks,
  '0009-isolation-defaults': isolationDefaults,
  '0010-list-filters': listFilters,
  '0011-outbox-snapshots': outboxSnapshots,
  '0012-delivery-claims': deliveryClaims,
  '0013-stop-also-by': stopAlsoBy,
  '0014-forget-unused-queues': forgetUnusedQueues,
};

const provider: MigrationProvider = {
  getMigrations: async () => ({ ...SQLITE_MIGRATIONS }),
};

/**
 * Brings the schema to the latest migration, all pending migrations in one transaction, and
 * returns the names of those it ran (none when the schema is current). Throws when one fails.
 * A database a newer jobworker migrated is refused first (`NewerSchemaError`), naming `database`
 * (its file): docs/storage.md, "Migrations".
 */
export async function migrateSqlite<DB>(
  db: Kysely<DB>,
  options: { readonly database?: string } = {},
): Promise<string[]> {
  await refuseNewerSchema(
    db as unknown as Kysely<unknown>,
    SQLITE_MIGRATIONS,
    options.database ?? 'in SQLite',
    sqliteHasMigrationTable,
  );
  const { error, results = [] } = await new Migrator({ db, provider }).migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(`SQLite migration ${failed ?? '(setup)'} failed: ${String(error)}`, { cause: error });
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
