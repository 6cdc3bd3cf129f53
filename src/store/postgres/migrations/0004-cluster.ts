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
  await sql`create trigger users_notify after insert or update or delete on users
    for each statement execute function jobworker_accounts_changed()`.execute(db);
  // Not on `last_used_at`: every node writes it as tokens are used, and a reload of every node's
  // directory at each such write would be a storm for nothing.
  await sql`create trigger tokens_notify after insert or delete
    or update of "user", label, sha256, expires_at, revoked_at on tokens
    for each statement execute function jobworker_accounts_changed()`.execute(db);
  // What a node that starts again looks for: its jobs decided \`lost\` by others (few, so a small index).
  await sql`create index jobs_lost_by_node on jobs (node, finished_at) where status = 'lost'`.execute(db);
}
