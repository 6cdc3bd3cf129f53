import { type Kysely, sql } from 'kysely';

/**
 * Cluster membership: one row per node (docs/cluster.md). Times are bigint Unix milliseconds, as
 * everywhere in this schema. Also: a notification on every change of users and tokens, so that
 * each node's in-memory directory of them (src/auth/user-directory.ts) reloads at once, and a
 * revoke on one node is refused on every node within the notification's latency.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('nodes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) =>
      c.notNull().check(sql`state in ('active', 'draining', 'left', 'lost')`),
    )
    .addColumn('joined_at', 'bigint', (c) => c.notNull())
    .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
    .addColumn('reason', 'text')
    .execute();
  // The lost-node sweep reads the live nodes by heartbeat.
  await sql`create index nodes_live on nodes (heartbeat_at) where state in ('active', 'draining')`.execute(
    db,
  );
  await sql`
    create function jobworker_accounts_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('jobworker_accounts', tg_table_name);
      return null;
    end $$`.execute(db);
  for (const table of ['users', 'tokens']) {
    await sql`create trigger ${sql.id(`${table}_notify`)} after insert or update or delete on ${sql.id(table)}
      for each statement execute function jobworker_accounts_changed()`.execute(db);
  }
}
