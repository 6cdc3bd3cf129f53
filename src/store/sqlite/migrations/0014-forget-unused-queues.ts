import { type Kysely, sql } from 'kysely';

/**
 * Queues without settings and without jobs go (docs/queues.md, "How many queues"): from now on
 * the deletion of a queue's last job forgets it, and this forgets those whose last job went
 * before. Written out rather than taken from the code's `UNSET_QUEUE` (see 0001): a migration
 * stays as it ran.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`delete from queues
    where name <> 'default' and concurrency is null and max_waiting is null and paused = 0
      and default_limits is null and max_limits is null and isolation is null
      and not exists (select 1 from jobs where jobs.queue = queues.name)`.execute(db);
}

/** Nothing to undo: a queue without settings or jobs has the defaults with or without its row. */
export async function down(_db: Kysely<unknown>): Promise<void> {}
