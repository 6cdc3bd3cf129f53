import { type Kysely, sql } from 'kysely';

/**
 * `nodes.session_name`: what the sessions of the server that last joined as the node are called
 * (`sessionName`, with that server's own tag), so that a sweep that declares the node lost ends
 * those, and not the sessions of a server starting again under the same id meanwhile (which,
 * matched by the id alone, lost its migration or its join). Null for a node that joined before
 * (its sessions are called `jobworker <id>`).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table nodes add column session_name text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table nodes drop column session_name`.execute(db);
}
