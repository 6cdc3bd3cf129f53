import { type Kysely, sql } from 'kysely';

/**
 * Dedupe keys per user (issue 8, defect 10): a key is unique among the queued and running jobs of
 * one scope, the owner's unless an admin named another user's, instead of across every user. A key
 * of one user's can then be neither taken nor probed by another. `dedupe_scope` copies the job's
 * scope (docs/queues.md) for the unique partial index that admission reads.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column dedupe_scope text`.execute(db);
  // Every key so far was its owner's: scoping only relaxes the old global uniqueness, so the
  // new index cannot find duplicates among existing rows.
  await sql`update jobs set dedupe_scope = owner where dedupe_key is not null`.execute(db);
  await db.schema.dropIndex('jobs_dedupe').execute();
  await db.schema
    .createIndex('jobs_dedupe')
    .on('jobs')
    .columns(['dedupe_scope', 'dedupe_key'])
    .unique()
    .where(sql<boolean>`dedupe_key is not null and status in ('queued', 'running', 'paused')`)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_dedupe').execute();
  await db.schema
    .createIndex('jobs_dedupe')
    .on('jobs')
    .columns(['dedupe_key'])
    .unique()
    .where(sql<boolean>`dedupe_key is not null and status in ('queued', 'running', 'paused')`)
    .execute();
  await db.schema.alterTable('jobs').dropColumn('dedupe_scope').execute();
}
