import { type Kysely, sql } from 'kysely';

/**
 * Who holds a pending delivery's attempt (`WebhookStore.claimDueDeliveries`): the claiming node's
 * name while its attempt is in flight, null otherwise. Every node of a cluster runs a dispatcher
 * over the same deliveries; a claim (`for update skip locked`, then `next_at` moved to the lease's
 * end) gives each attempt to one node. A node that starts again gives its own dead claims back at
 * once (by this name) instead of waiting out their leases; a node that never comes back leaves
 * them to the others when the leases end.
 *
 * Written out rather than derived from the code: a later change is a new migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table webhook_deliveries add column claimed_by text collate "C"`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table webhook_deliveries drop column claimed_by`.execute(db);
}
