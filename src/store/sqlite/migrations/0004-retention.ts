import { type Kysely, sql } from 'kysely';

/**
 * History retention and deletion (docs/storage.md, "Retention"):
 * - `jobs_finished (finished_at, id) where finished_at is not null`: finished jobs oldest first,
 *   so a prune batch is one index range, and the count limit one bounded walk from the newest;
 * - `jobs_finished_by_owner (owner, finished_at, id)`: the same for one user's own prune;
 * - `job_dirs_to_remove`: ids whose rows were deleted and whose directories are still to be
 *   removed. It is written in the transaction that deletes the rows, so a crash between the two
 *   leaves a row here, and the next pass removes the orphan directory without listing `jobs/`.
 *
 * Only final statuses have `finished_at`, so the partial indexes hold exactly the finished jobs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('jobs_finished')
    .on('jobs')
    .columns(['finished_at', 'id'])
    .where(sql.ref('finished_at'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('jobs_finished_by_owner')
    .on('jobs')
    .columns(['owner', 'finished_at', 'id'])
    .where(sql.ref('finished_at'), 'is not', null)
    .execute();
  await db.schema
    .createTable('job_dirs_to_remove')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .modifyEnd(sql`without rowid, strict`)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('job_dirs_to_remove').execute();
  await db.schema.dropIndex('jobs_finished_by_owner').execute();
  await db.schema.dropIndex('jobs_finished').execute();
}
