import { type Kysely, sql } from 'kysely';
import type { JobStatus } from '../../core/job.ts';
import type { StoreSchema } from '../schema.ts';

/**
 * Folds the deltas the triggers of migration 0003-webhooks appended to `job_status_counts` into
 * one row per status, in one statement. Only rows no other fold has locked are taken (`skip
 * locked`): two nodes folding at once each fold a disjoint part, never wait on each other and
 * never count a delta twice. Deltas of transactions not yet committed are invisible here and stay.
 * Called by every count; a store that changes many jobs without anyone reading the counts may call
 * it too (its retention, say) to keep the table small.
 */
export async function foldJobStatusCounts(db: Kysely<StoreSchema>): Promise<void> {
  await sql`with folded as (
      delete from job_status_counts
      where ctid = any (array(select ctid from job_status_counts for update skip locked))
      returning status, n
    )
    insert into job_status_counts (status, n)
    select status, sum(n) from folded group by status`.execute(db);
}

/** Jobs per status: the sum of each status's deltas, after a fold. */
export async function countJobsByStatus(
  db: Kysely<StoreSchema>,
): Promise<Partial<Record<JobStatus, number>>> {
  await foldJobStatusCounts(db);
  const rows = await db
    .selectFrom('job_status_counts')
    .select(['status', sql<number>`sum(n)::bigint`.as('n')])
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}
