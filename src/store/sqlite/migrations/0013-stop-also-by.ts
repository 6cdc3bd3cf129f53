import { type Kysely, sql } from 'kysely';

/**
 * `stop_also_by`: a user who asked for a stop while the one on record was the timeout's
 * (`StopRequest.alsoBy`). The run still ends as its timeout decides, and is not retried; kept in
 * the store, the end's transaction decides that, whichever node or server records the end.
 *
 * Written out rather than derived from the code (see 0001): a later column is a new migration.
 * The outbox snapshot (0011) does not list it: no event shows it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column stop_also_by text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs drop column stop_also_by`.execute(db);
}
