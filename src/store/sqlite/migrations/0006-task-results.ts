import { type Kysely, sql } from 'kysely';

/**
 * Results and progress of jobs (docs/tasks.md).
 * - `job_results`: the JSON value a job wrote to `JOBWORKER_RESULT` (at most 1 MiB), as text, in
 *   a side table so that reading and listing jobs never loads it; deleted with its job by
 *   `on delete cascade`, so every delete and retention pass prunes it.
 * - `jobs.result_error`: why that value was not kept (too large, not JSON), shown on the job.
 * - `jobs.progress`: the latest progress line the job wrote, as JSON (small: a bounded message).
 * A job's task and parameters live in its spec (JSON), like every other part of what it runs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('job_results')
    .addColumn('job_id', 'text', (c) => c.primaryKey().notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('json', 'text', (c) => c.notNull())
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema.alterTable('jobs').addColumn('result_error', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('progress', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').dropColumn('progress').execute();
  await db.schema.alterTable('jobs').dropColumn('result_error').execute();
  await db.schema.dropTable('job_results').execute();
}
