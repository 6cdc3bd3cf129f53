import { type Kysely, sql } from 'kysely';

/**
 * Resource limits (docs/isolation.md, "Limits"):
 * - `queues.default_limits`, `queues.max_limits`: the queue's defaults and maxima, as the JSON of
 *   a normalized `JobLimits` (null: none);
 * - `users.default_limits`, `users.max_limits`: the same per user, set by an admin;
 * - `jobs.usage`: what the job used (`JobUsage` JSON), read from its cgroups when it ended.
 * No index: these are read by key (a queue, a user, a job), never searched.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table queues add column default_limits text`.execute(db);
  await sql`alter table queues add column max_limits text`.execute(db);
  await sql`alter table users add column default_limits text`.execute(db);
  await sql`alter table users add column max_limits text`.execute(db);
  await sql`alter table jobs add column usage text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').dropColumn('usage').execute();
  await db.schema.alterTable('users').dropColumn('max_limits').execute();
  await db.schema.alterTable('users').dropColumn('default_limits').execute();
  await db.schema.alterTable('queues').dropColumn('max_limits').execute();
  await db.schema.alterTable('queues').dropColumn('default_limits').execute();
}
