import { type Kysely, sql, type Transaction } from 'kysely';
import { InUseError, NotFinishedError, NotFoundError, ValidationError } from '../../core/errors.ts';
import { isFinal, type Job } from '../../core/job.ts';
import { UNSET_QUEUE } from '../forgotten-queues.ts';
import { rowToJob, toMillis } from '../job-row.ts';
import type { DeleteFinishedQuery, FinishedBound, RetentionLimits } from '../job-store.ts';
import type { StoreSchema } from '../schema.ts';

/**
 * Deleting finished jobs (docs/storage.md, "Retention"): the SQL behind `deleteJob`,
 * `retentionBound` and `deleteFinished`. Every question is one range of `jobs_finished`
 * (or `jobs_finished_by_owner`); `test/store/sqlite-retention.test.ts` checks the plans.
 */

/** The most jobs one `deleteFinished` call deletes. */
export const MAX_DELETE_BATCH = 10_000;

/** A bound past every real time: "everything finished" (`keepNewest: 0`). */
const END_OF_TIME = 8.64e15;

/** The ids of the queued jobs waiting for `id` (at most 10, for the error message). */
async function waitingFor(trx: Transaction<StoreSchema>, id: string): Promise<string[]> {
  const rows = await trx
    .selectFrom('job_deps as d')
    .crossJoin('jobs as w')
    .select('w.id')
    .whereRef('w.id', '=', 'd.job_id')
    .where('d.dep_id', '=', id)
    .where('w.status', '=', 'queued')
    .limit(10)
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Deletes the rows of these finished jobs and records their directories, inside `trx`; returns the
 * queues forgotten with them (see `forgetQueues`).
 */
async function deleteRows(trx: Transaction<StoreSchema>, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  // Labels and the jobs' own edges go by `on delete cascade`; edges from finished dependents to
  // them would dangle, so they go too (no queued job waits for them: the callers checked).
  await trx.deleteFrom('job_deps').where('dep_id', 'in', ids).execute();
  // Their webhook deliveries too: each body is the job as JSON, its command line with it, which
  // must not outlive the job ("deleted for good"). A pending one is not sent.
  await trx.deleteFrom('webhook_deliveries').where('job_id', 'in', ids).execute();
  // And their events not yet fanned out: each holds a snapshot of the job's record (its
  // environment included) that the dispatcher would make a delivery's body from. A fan-out that read one before finds it gone and adds
  // nothing. A scan (no index on job_id): the outbox holds only what a dispatcher has yet to take.
  await trx.deleteFrom('webhook_outbox').where('job_id', 'in', ids).execute();
  const gone = await trx.deleteFrom('jobs').where('id', 'in', ids).returning('queue').execute();
  await trx
    .insertInto('job_dirs_to_remove')
    .values(ids.map((id) => ({ id })))
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  return forgetQueues(trx, [...new Set(gone.map((r) => r.queue))]);
}

/**
 * Deletes the rows of these queues that have no settings and, now, no job: a queue made by a
 * submission goes with its last job (docs/queues.md, "How many queues"). Each `not exists` is one
 * probe of `jobs_by_queue`. The store's one connection writes alone, so no admission can slip a
 * job in between. Returns the names of the rows deleted.
 */
async function forgetQueues(trx: Transaction<StoreSchema>, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const forgotten: string[] = [];
  // In slices: SQLite binds at most 32,766 parameters to one statement.
  for (let i = 0; i < names.length; i += 500) {
    const slice = names.slice(i, i + 500);
    const { rows } = await sql<{ name: string }>`delete from queues
      where name in (${sql.join(slice)}) and ${sql.raw(UNSET_QUEUE)}
        and not exists (select 1 from jobs indexed by jobs_by_queue where jobs.queue = queues.name)
      returning name`.execute(trx);
    forgotten.push(...rows.map((r) => r.name));
  }
  return forgotten.sort();
}

/** A deletion's outcome: what it deleted, and the queues it forgot. */
export interface Deleted<T> {
  readonly deleted: T;
  readonly forgotten: string[];
}

export function deleteJobIn(db: Kysely<StoreSchema>, id: string): Promise<Deleted<Job>> {
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) throw new NotFoundError(id);
    if (!isFinal(row.status)) throw new NotFinishedError(id, row.status);
    const dependents = await waitingFor(trx, id);
    if (dependents.length > 0) throw new InUseError(id, dependents);
    const forgotten = await deleteRows(trx, [id]);
    return { deleted: rowToJob(row), forgotten };
  });
}

export async function retentionBoundIn(
  db: Kysely<StoreSchema>,
  limits: RetentionLimits,
): Promise<FinishedBound | null> {
  const bounds: FinishedBound[] = [];
  if (limits.finishedBefore !== null) {
    bounds.push({ finishedAt: new Date(toMillis('finishedBefore', limits.finishedBefore)), id: '' });
  }
  const keep = limits.keepNewest;
  if (keep !== null) {
    if (!Number.isSafeInteger(keep) || keep < 0) {
      throw ValidationError.expected('keepNewest', 'a whole number from 0, or null for no limit', keep);
    }
    if (keep === 0) {
      bounds.push({ finishedAt: new Date(END_OF_TIME), id: '' });
    } else {
      const { rows } = await countBoundQuery(keep).execute(db);
      const row = rows[0];
      if (row !== undefined) bounds.push({ finishedAt: new Date(row.finished_at), id: row.id });
    }
  }
  if (bounds.length === 0) return null;
  // Both limits hold: cut at the later of the two bounds.
  return bounds.reduce((a, b) => (compareBounds(a, b) >= 0 ? a : b));
}

/**
 * The `keep`-th newest finished job: it and every newer one stay. A walk of `keep` entries of a
 * covering index, newest first; no row of the table is read, and nothing is sorted.
 */
export function countBoundQuery(keep: number) {
  return sql<{ finished_at: number; id: string }>`
    select finished_at, id from jobs indexed by jobs_finished
    where finished_at is not null
    order by finished_at desc, id desc
    limit 1 offset ${keep - 1}`;
}

function compareBounds(a: FinishedBound, b: FinishedBound): number {
  const dt = a.finishedAt.getTime() - b.finishedAt.getTime();
  return dt !== 0 ? dt : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The ids of one batch: finished jobs strictly before the bound, oldest first, that no queued
 * job waits for. The row-value comparison is a range of the index; the partial index applies
 * because `finished_at < ?`-style terms imply `finished_at is not null`.
 */
export function deleteBatchQuery(query: DeleteFinishedQuery) {
  const at = toMillis('before.finishedAt', query.before.finishedAt);
  const notWaitedFor = sql<boolean>`not exists (
    select 1 from job_deps d cross join jobs w
    where d.dep_id = j.id and w.id = d.job_id and w.status = 'queued')`;
  const owned = query.owner !== undefined;
  const index = owned ? sql`jobs_finished_by_owner` : sql`jobs_finished`;
  return sql<{ id: string }>`
    select j.id from jobs as j indexed by ${index}
    where ${owned ? sql`j.owner = ${query.owner} and` : sql``}
      j.finished_at is not null and (j.finished_at, j.id) < (${at}, ${query.before.id})
      and ${notWaitedFor}
    order by j.finished_at, j.id
    limit ${query.limit}`;
}

export async function deleteFinishedIn(
  db: Kysely<StoreSchema>,
  query: DeleteFinishedQuery,
): Promise<Deleted<string[]>> {
  if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_DELETE_BATCH) {
    throw ValidationError.expected('limit', `an integer from 1 to ${MAX_DELETE_BATCH}`, query.limit);
  }
  return db.transaction().execute(async (trx) => {
    const { rows } = await deleteBatchQuery(query).execute(trx);
    const ids = rows.map((r) => r.id);
    return { deleted: ids, forgotten: await deleteRows(trx, ids) };
  });
}
