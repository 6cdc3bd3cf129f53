import { type Kysely, sql } from 'kysely';

/**
 * Isolation defaults (docs/isolation.md, "Namespaces"): the namespaces a job of a queue, or of a
 * user, runs in when its spec names none. Each is the JSON of a normalized `isolation` object
 * (src/core/isolation.ts); null for no default.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table queues add column isolation text`.execute(db);
  await sql`alter table users add column isolation text`.execute(db);
}
