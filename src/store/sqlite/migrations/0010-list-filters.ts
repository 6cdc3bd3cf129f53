import type { Kysely } from 'kysely';

/**
 * The `queue` filter of the job list (docs/storage.md): "the newest jobs of a queue" is one range
 * of (queue, id), read backwards and stopped after the page. The dispatch indexes on `queue` are
 * partial (waiting or active jobs only), so they cannot serve a history listing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('jobs_by_queue').on('jobs').columns(['queue', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_by_queue').execute();
}
