import type { Kysely } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';
import { NewerSchemaError, postgresHasMigrationTable, refuseNewerSchema } from '../newer-schema.ts';
import * as jobs from './migrations/0001-jobs.ts';
import * as users from './migrations/0002-users.ts';
import * as webhooks from './migrations/0003-webhooks.ts';
import * as cluster from './migrations/0004-cluster.ts';
import * as deliveryClaims from './migrations/0005-delivery-claims.ts';
import * as dueNotify from './migrations/0006-due-notify.ts';
import * as stopAlsoBy from './migrations/0007-stop-also-by.ts';
import * as poolAccounts from './migrations/0008-pool-accounts.ts';
import * as nodeSessions from './migrations/0009-node-sessions.ts';
import * as forgetUnusedQueues from './migrations/0010-forget-unused-queues.ts';

/**
 * Every PostgreSQL migration, by name, in the order they run. The PostgreSQL schema started at
 * the SQLite schema's 0010 state, so its numbering is its own: one migration per area.
 */
export const POSTGRES_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-jobs': jobs,
  '0002-users': users,
  '0003-webhooks': webhooks,
  '0004-cluster': cluster,
  '0005-delivery-claims': deliveryClaims,
  '0006-due-notify': dueNotify,
  '0007-stop-also-by': stopAlsoBy,
  '0008-pool-accounts': poolAccounts,
  '0009-node-sessions': nodeSessions,
  '0010-forget-unused-queues': forgetUnusedQueues,
};

const provider: MigrationProvider = {
  getMigrations: async () => ({ ...POSTGRES_MIGRATIONS }),
};

/**
 * Brings the schema to the latest migration and returns the names of those it ran. Kysely's
 * migrator on PostgreSQL runs them in one transaction while holding a session advisory lock,
 * so nodes of a cluster starting together migrate once: the others wait, then find nothing to do.
 * A database a newer jobworker migrated is refused first (`NewerSchemaError`), naming `database`
 * (its URL with the password hidden): docs/cluster.md, "Upgrading a cluster".
 */
export async function migratePostgres<DB>(
  db: Kysely<DB>,
  options: { readonly database?: string } = {},
): Promise<string[]> {
  const database = options.database ?? 'on PostgreSQL';
  const untyped = db as unknown as Kysely<unknown>;
  await refuseNewerSchema(untyped, POSTGRES_MIGRATIONS, database, postgresHasMigrationTable);
  const { error, results = [] } = await new Migrator({ db, provider }).migrateToLatest();
  if (error !== undefined) {
    // A newer node may have migrated between the look above and the migrator's lock: say so
    // rather than pass on the migrator's "corrupted migrations".
    const newer = await refuseNewerSchema(
      untyped,
      POSTGRES_MIGRATIONS,
      database,
      postgresHasMigrationTable,
    ).then(
      () => undefined,
      (err: unknown) => (err instanceof NewerSchemaError ? err : undefined),
    );
    if (newer) throw newer;
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(`PostgreSQL migration ${failed ?? '(setup)'} failed: ${String(error)}`, { cause: error });
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
