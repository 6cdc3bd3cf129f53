import { type Kysely, sql, type Transaction } from 'kysely';
import type { StoreSchema } from '../schema.ts';

/**
 * Now on the database server's clock, in Unix milliseconds (`clock_timestamp()`: the time the
 * statement reads it, not its transaction's start). The one clock every node of a cluster reads
 * alike: what a node's heartbeat records and its silence is judged by, and what says a delayed job
 * is due, so that a node whose own clock is off neither declares its peers lost nor starts a job
 * early (docs/cluster.md, "Clocks").
 */
export const PG_NOW_MS = sql<number>`floor(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** Reads `PG_NOW_MS`. */
export async function pgNowMs(db: Kysely<StoreSchema> | Transaction<StoreSchema>): Promise<number> {
  const { rows } = await sql<{ now: number }>`select ${PG_NOW_MS} as now`.execute(db);
  return Number(rows[0]!.now);
}
