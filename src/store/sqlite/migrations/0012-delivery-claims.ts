import { type Kysely, sql } from 'kysely';

/**
 * Who holds a pending delivery's attempt (`WebhookStore.claimDueDeliveries`): the claimer's name
 * while its attempt is in flight, null otherwise. The claim itself moves `next_at` to the lease's
 * end, so a delivery in flight is not due for anyone else; the name lets a server that starts
 * again give its own dead claims back at once instead of waiting out their leases.
 *
 * Written out rather than derived from the code (see 0001): a later column is a new migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table webhook_deliveries add column claimed_by text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table webhook_deliveries drop column claimed_by`.execute(db);
}
