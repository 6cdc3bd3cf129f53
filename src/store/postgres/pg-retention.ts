import { type Kysely, sql, type Transaction } from 'kysely';
import { InUseError, NotFinishedError, NotFoundError, ValidationError } from '../../core/errors.ts';
import { isFinal, type Job } from '../../core/job.ts';
import { UNSET_QUEUE } from '../forgotten-queues.ts';
import { rowToJob, toMillis } from '../job-row.ts';
import type { DeleteFinishedQuery, FinishedBound, RetentionLimits } from '../job-store.ts';
import type { StoreSchema } from '../schema.ts';

/**
 * Deleting finished jobs on PostgreSQL (docs/storage.md, "Retention"), as the SQLite store does:
 * every question is one range of `jobs_finished` (or `jobs_finished_by_owner`). Rows are locked
 * before they go, so an admission naming one of them in `after` (which locks it `FOR SHARE`)
 * and its deletion are ordered: either the admission sees no job, or the delete sees its
 * waiting dependent.
 */

/** The most jobs one `deleteFinished` call deletes. */
export const MAX_DELETE_BATCH = 10_000;

/** A bound past every real time: "everything finished" (`keepNewest: 0`). */
const END_OF_TIME = 8.64e15;

/** The ids of the queued jobs waiting for `id` (at most 10, for the error message). */
async function waitingFor(trx: Transaction<StoreSchema>, id: string): Promise<string[]> {
  const rows = await trx
    .selectFrom('job_deps as d')
    .innerJoin('jobs as w', 'w.id', 'd.job_id')
    .select('w.id')
    .where('d.dep_id', '=', id)
    .where('w.status', '=', 'queued')
    .limit(10)
    .execute();
  return rows.map((r) => r.id);
}

/** A deletion's outcome: what it deleted, and the queues it forgot. */
export interface Deleted<T> {
  readonly deleted: T;
  readonly forgotten: string[];
}

/** What `deleteRows` did about the queues of the jobs it deleted. */
interface QueuesLeft {
  readonly forgotten: string[];
  /** Queues without settings whose rows another transaction held: see `forgetBusyQueues`. */
  readonly busy: string[];
}

/**
 * Deletes the rows of these finished jobs and records their directories, inside `trx`, and
 * forgets the queues they were the last jobs of (`forgetQueues`).
 */
async function deleteRows(trx: Transaction<StoreSchema>, ids: readonly string[]): Promise<QueuesLeft> {
  if (ids.length === 0) return { forgotten: [], busy: [] };
  // Labels, results and the jobs' own edges go by `on delete cascade`; edges from finished
  // dependents to them would dangle, so they go too (no queued job waits for them).
  await trx.deleteFrom('job_deps').where('dep_id', 'in', ids).execute();
  // Their webhook deliveries too: each body is the job as JSON, its command line and environment
  // with it, which must not outlive the job ("deleted for good"). A pending one is not sent.
  await trx.deleteFrom('webhook_deliveries').where('job_id', 'in', ids).execute();
  // And their events not yet fanned out: each holds a snapshot of the job that the dispatcher
  // would make a delivery's body from. A fan-out that read one before finds it gone and adds
  // nothing. A scan (no index on job_id): the outbox holds only what a dispatcher has yet to take.
  await trx.deleteFrom('webhook_outbox').where('job_id', 'in', ids).execute();
  const gone = await trx
    .deleteFrom('jobs')
    .where('id', 'in', ids)
    .returning(['id', 'node', 'queue'])
    .execute();
  if (gone.length === 0) return { forgotten: [], busy: [] };
  await trx
    .insertInto('job_dirs_to_remove')
    .values(gone.map(({ id, node }) => ({ id, node })))
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  return forgetQueues(trx, [...new Set(gone.map((r) => r.queue))], 'skip locked');
}

/**
 * Deletes the rows of these queues that have no settings and, now, no job (docs/queues.md, "How
 * many queues"), in two statements. The rows are locked first, `FOR UPDATE`; the second statement,
 * whose snapshot is taken once they are held, deletes those no job names. An admission holds its
 * queue's row `FOR KEY SHARE` until it commits (`holdQueue`), so either it committed before the
 * lock and its job is seen, or it waits for this transaction, finds the row gone and makes it
 * again. `skip locked` (inside a deletion, which holds the rows of the jobs it deletes): a row
 * another transaction holds is not waited for, which could close a cycle with an admission that
 * holds the row and waits for one of those jobs (`after`); it is left `busy` for
 * `forgetBusyQueues`.
 */
async function forgetQueues(
  trx: Transaction<StoreSchema>,
  names: readonly string[],
  locking: 'skip locked' | 'wait',
): Promise<QueuesLeft> {
  if (names.length === 0) return { forgotten: [], busy: [] };
  const unset = sql.raw(UNSET_QUEUE);
  // Only those no job names, as this transaction sees them: a queue still in use (most are) is
  // not locked, which would hold up its claims and admissions for nothing.
  const { rows: candidates } = await sql<{ name: string }>`select name from queues q
    where name = any(${names}::text[]) and ${unset}
    and not exists (select 1 from jobs j where j.queue = q.name)`.execute(trx);
  if (candidates.length === 0) return { forgotten: [], busy: [] };
  const wanted = candidates.map((r) => r.name);
  // In name order: two transactions locking some of the same rows take them in the same order.
  const { rows: held } = await sql<{ name: string }>`select name from queues
    where name = any(${wanted}::text[]) and ${unset}
    order by name for update ${locking === 'wait' ? sql`` : sql`skip locked`}`.execute(trx);
  const locked = held.map((r) => r.name);
  const { rows: deleted } =
    locked.length === 0
      ? { rows: [] }
      : await sql<{ name: string }>`delete from queues q
    where q.name = any(${locked}::text[]) and not exists (select 1 from jobs j where j.queue = q.name)
    returning q.name`.execute(trx);
  const taken = new Set(locked);
  return {
    forgotten: deleted.map((r) => r.name).sort(),
    busy: locking === 'wait' ? [] : wanted.filter((name) => !taken.has(name)),
  };
}

/**
 * The queues a deletion passed over because another transaction held their rows, tried again once
 * it committed, each in a transaction of its own that holds nothing else (one queue's row, never
 * two: waiting for a second while holding a first could close a cycle with an admission and a
 * job's end) and so may wait for it. Rare (an admission to the queue, which gives it a job; a
 * claim or a change of its settings), and never fails the deletion, which is done: a queue left
 * so is forgotten with its next last job.
 */
export async function forgetBusyQueues(db: Kysely<StoreSchema>, busy: readonly string[]): Promise<string[]> {
  const forgotten: string[] = [];
  for (const name of busy) {
    try {
      forgotten.push(
        ...(await db.transaction().execute((trx) => forgetQueues(trx, [name], 'wait'))).forgotten,
      );
    } catch {
      // Left as it is: forgotten with its next last job.
    }
  }
  return forgotten;
}

export async function pgDeleteJob(db: Kysely<StoreSchema>, id: string): Promise<Deleted<Job>> {
  const { job, queues } = await db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('jobs').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (row === undefined) throw new NotFoundError(id);
    if (!isFinal(row.status)) throw new NotFinishedError(id, row.status);
    const dependents = await waitingFor(trx, id);
    if (dependents.length > 0) throw new InUseError(id, dependents);
    return { job: rowToJob(row), queues: await deleteRows(trx, [id]) };
  });
  const later = await forgetBusyQueues(db, queues.busy);
  return { deleted: job, forgotten: [...queues.forgotten, ...later] };
}

export async function pgRetentionBound(
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
      // The keep-th newest finished job: a backward walk of `keep` entries of jobs_finished.
      const { rows } = await sql<{ finished_at: number; id: string }>`
        select finished_at, id from jobs
        where finished_at is not null
        order by finished_at desc, id desc
        limit 1 offset ${keep - 1}`.execute(db);
      const row = rows[0];
      if (row !== undefined) bounds.push({ finishedAt: new Date(row.finished_at), id: row.id });
    }
  }
  if (bounds.length === 0) return null;
  // Both limits hold: cut at the later of the two bounds.
  return bounds.reduce((a, b) => (compareBounds(a, b) >= 0 ? a : b));
}

function compareBounds(a: FinishedBound, b: FinishedBound): number {
  const dt = a.finishedAt.getTime() - b.finishedAt.getTime();
  return dt !== 0 ? dt : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The ids of one batch: finished jobs strictly before the bound, oldest first, that no queued job
 * waits for, locked. `skip locked`: a job another node is deleting (or an admission is naming)
 * right now is left to the next pass rather than waited for.
 */
function deleteBatchQuery(query: DeleteFinishedQuery) {
  const at = toMillis('before.finishedAt', query.before.finishedAt);
  const owned = query.owner !== undefined;
  return sql<{ id: string }>`
    select j.id from jobs as j
    where ${owned ? sql`j.owner = ${query.owner} and` : sql``}
      j.finished_at is not null and (j.finished_at, j.id) < (${at}::bigint, ${query.before.id}::text)
      and not exists (
        select 1 from job_deps d join jobs w on w.id = d.job_id
        where d.dep_id = j.id and w.status = 'queued')
    order by j.finished_at, j.id
    limit ${query.limit}
    for update of j skip locked`;
}

export async function pgDeleteFinished(
  db: Kysely<StoreSchema>,
  query: DeleteFinishedQuery,
): Promise<Deleted<string[]>> {
  if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_DELETE_BATCH) {
    throw ValidationError.expected('limit', `an integer from 1 to ${MAX_DELETE_BATCH}`, query.limit);
  }
  const { ids, queues } = await db.transaction().execute(async (trx) => {
    const { rows } = await deleteBatchQuery(query).execute(trx);
    const ids = rows.map((r) => r.id);
    return { ids, queues: await deleteRows(trx, ids) };
  });
  const later = await forgetBusyQueues(db, queues.busy);
  return { deleted: ids, forgotten: [...queues.forgotten, ...later] };
}
