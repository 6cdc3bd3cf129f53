import type { Kysely } from 'kysely';

/**
 * Results and progress of jobs (docs/tasks.md): columns of the job's own row, so that they are
 * deleted with it by every delete and retention pass, and no join is needed to read them.
 * - `result`: the JSON value the job wrote to `JOBWORKER_RESULT` (at most 1 MiB), as text.
 * - `result_error`: why that value was not kept (too large, not JSON), shown on the job.
 * - `progress`: the latest progress line the job wrote, as JSON.
 * A job's task and parameters live in its spec (JSON), like every other part of what it runs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').addColumn('result', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('result_error', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('progress', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').dropColumn('progress').execute();
  await db.schema.alterTable('jobs').dropColumn('result_error').execute();
  await db.schema.alterTable('jobs').dropColumn('result').execute();
}
