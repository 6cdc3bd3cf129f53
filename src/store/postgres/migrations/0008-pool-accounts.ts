import type { Kysely } from 'kysely';

/**
 * `pool_accounts`: the uid of each user's pool account, shared by the nodes of a cluster (a job
 * runs on whichever node claims it, so a user's uid must be one on every node; `PgPoolAccounts`).
 * Each node took in the allocations of its own `accounts.json` at its start. `uid` is unique:
 * two users never share one, whichever nodes gave them.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('pool_accounts')
    .addColumn('user_name', 'text', (c) => c.primaryKey())
    .addColumn('uid', 'integer', (c) => c.notNull().unique())
    .addColumn('allocated_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('pool_accounts').execute();
}
