import { CompiledQuery, type Insertable, type Kysely, sql, type Transaction } from 'kysely';
import type { JobStatus } from '../../core/job.ts';
import { TRANSITIONS } from '../../core/states.ts';
import type { JobRow, QueueRow, StoreSchema } from '../schema.ts';

/**
 * The statements of the store's hot paths (a job's admission, start, end and reads), compiled
 * once: building a query through Kysely costs more than SQLite takes to run it. Each is run with
 * its parameters through Kysely (`executeQuery`), so it still waits its turn on the connection.
 */

type Db = Kysely<StoreSchema> | Transaction<StoreSchema>;

/** `select * from jobs where id = ?`; the id is given as the one parameter at each run. */
export function compileGetJob(db: Kysely<StoreSchema>) {
  return db.selectFrom('jobs').selectAll().where('id', '=', '').compile();
}

/** The statuses a job may move to `to` from, as an SQL list of literals: `'queued', 'paused'`. */
function fromStatuses(to: JobStatus): string {
  const from = (Object.keys(TRANSITIONS) as JobStatus[]).filter((status) =>
    (TRANSITIONS[status] as readonly JobStatus[]).includes(to),
  );
  return from.map((status) => `'${status}'`).join(', ');
}

/**
 * The start of a job as one statement: the checked transition is in its `where`, so it needs no
 * read before it nor a transaction around it. Parameters: process, started_at, id.
 */
export function compileMarkStarted(db: Kysely<StoreSchema>) {
  return sql<JobRow>`update jobs set status = 'running', hold = null, process = ${''}, started_at = ${0}
    where id = ${''} and status in (${sql.raw(fromStatuses('running'))}) returning *`.compile(db);
}

/**
 * The end of a job as one statement, per final status (see `compileMarkStarted`); a stop
 * already on record is kept. A job a user stopped during its timeout's stop (`stop_also_by`)
 * takes the general path, which names that stop in the reason. Parameters: exit_code, exit_signal, exit_reason, finished_at,
 * stdout_bytes, stderr_bytes, stop_forced (0 or 1), id.
 */
export function compileMarkFinished(db: Kysely<StoreSchema>, status: JobStatus) {
  return sql<JobRow>`update jobs set status = ${sql.lit(status)}, exit_code = ${0}, exit_signal = ${''},
    exit_reason = ${''}, finished_at = ${0}, stdout_bytes = ${0}, stderr_bytes = ${0}, usage = ${''}, hold = null,
    paused_at = null, stop_forced = max(stop_forced, ${0})
    where id = ${''} and status in (${sql.raw(fromStatuses(status))}) and stop_also_by is null returning *`.compile(
    db,
  );
}

/**
 * Counts of one queue's jobs, each through the partial index that holds just those jobs.
 * `indexed by`: without statistics SQLite picks `jobs_by_queue` for `queue = ?`, which holds
 * every job the queue ever had, and a claim behind 100,000 queued jobs counted its few running
 * ones by reading all of them (16 ms a claim, 15 jobs/s through a limit of 2).
 */
export const QUEUE_COUNTS = {
  /** Jobs holding one of the queue's slots: running, paused, or being started. */
  active: `select count(*) as n from jobs indexed by jobs_active_by_queue
    where queue = ? and (status in ('running', 'paused') or hold = 'starting')`,
  /** Queued jobs, those being started included. */
  queued: `select count(*) as n from jobs indexed by jobs_waiting_by_queue where queue = ? and status = 'queued'`,
  /** Queued jobs being started (they hold a slot, and are counted as running). */
  starting: `select count(*) as n from jobs indexed by jobs_waiting_by_queue
    where queue = ? and status = 'queued' and hold = 'starting'`,
  /**
   * Waiting jobs as the Queue's `waiting` counts them (those being started hold a slot instead),
   * only up to the second parameter: a full queue need not be counted whole to be known full.
   */
  waitingUpTo: `select count(*) as n from (select 1 from jobs indexed by jobs_waiting_by_queue
    where queue = ? and status = 'queued' and hold is not 'starting' limit ?)`,
} as const;

/**
 * Every queue's row with its counts (`queued`, `starting`, `running`, as `QUEUE_COUNTS` has them),
 * by name, in one statement: each count is one walk of its partial index, grouped by queue,
 * instead of three statements per queue.
 */
export const QUEUE_STATES = `select q.name, q.concurrency, q.max_waiting, q.paused, q.default_limits,
    q.max_limits, q.isolation, coalesce(w.queued, 0) as queued, coalesce(w.starting, 0) as starting,
    coalesce(a.running, 0) as running
  from queues q
  left join (select queue, count(*) as queued, count(*) filter (where hold = 'starting') as starting
    from jobs indexed by jobs_waiting_by_queue where status = 'queued' group by queue) w on w.queue = q.name
  left join (select queue, count(*) as running from jobs indexed by jobs_active_by_queue
    where status in ('running', 'paused') or hold = 'starting' group by queue) a on a.queue = q.name
  order by q.name`;

/** How many queues the store holds, counted up to `limit` only: enough to know it is reached. */
export async function countQueuesUpTo(db: Db, limit: number): Promise<number> {
  const { rows } = await db.executeQuery<{ n: number }>(
    CompiledQuery.raw('select count(*) as n from (select 1 from queues limit ?)', [limit]),
  );
  return Number(rows[0]?.n ?? 0);
}

/** One of `QUEUE_COUNTS` for `queue` (and the limit of `waitingUpTo`). */
export async function countInQueue(
  db: Db,
  count: keyof typeof QUEUE_COUNTS,
  queue: string,
  limit?: number,
): Promise<number> {
  const parameters = limit === undefined ? [queue] : [queue, limit];
  const { rows } = await db.executeQuery<{ n: number }>(CompiledQuery.raw(QUEUE_COUNTS[count], parameters));
  return Number(rows[0]?.n ?? 0);
}

/** Whether a job has dependents at all: most have none, and then there is nothing to settle. */
export function compileHasDependents(db: Kysely<StoreSchema>) {
  return sql<{ one: number }>`select 1 as one from job_deps where dep_id = ${''} limit 1`.compile(db);
}

/**
 * Statements of every admission, compiled once (building a query costs more than running it):
 * their SQL is the same for every job. A row's insert is kept per table with its columns (see
 * `insertRow`).
 */
const insertQueries = new Map<
  keyof StoreSchema,
  { readonly columns: string; readonly query: CompiledQuery }
>();
let ensureQueueQuery: ReturnType<typeof compileEnsureQueue> | undefined;
let queueRowQuery: ReturnType<typeof compileQueueRow> | undefined;

function compileEnsureQueue(db: Db) {
  return db
    .insertInto('queues')
    .values({ name: '', paused: 0 })
    .onConflict((oc) => oc.column('name').doNothing())
    .compile();
}

function compileQueueRow(db: Db) {
  return db.selectFrom('queues').selectAll().where('name', '=', '').compile();
}

/** Inserts a jobs row. */
export function insertJobRow(trx: Transaction<StoreSchema>, row: JobRow): Promise<void> {
  return insertRow(trx, 'jobs', row);
}

/**
 * Inserts one row into `table` through a statement compiled once per table: Kysely's insert
 * builder parses every value of every row it is given, which cost the audit trail's batches more
 * than SQLite's inserts did. The statement is kept with its columns, and used only for a row with
 * exactly those columns, every one set (Kysely leaves out a column whose value is undefined).
 */
export async function insertRow<T extends keyof StoreSchema & string>(
  db: Db,
  table: T,
  row: Insertable<StoreSchema[T]>,
): Promise<void> {
  const columns = Object.keys(row).join(',');
  const values = Object.values(row);
  const kept = insertQueries.get(table);
  if (kept?.columns === columns && !values.includes(undefined)) {
    await db.executeQuery({ ...kept.query, parameters: values });
    return;
  }
  const query = db
    .insertInto(table)
    .values(row as never)
    .compile();
  // Kept only when Kysely took every column, in order, with its value as it is.
  const same =
    query.parameters.length === values.length && query.parameters.every((value, i) => value === values[i]);
  if (same && kept === undefined) insertQueries.set(table, { columns, query });
  await db.executeQuery(query);
}

/** Makes the queue a job names exist (for the dispatcher), if it does not yet. */
export async function ensureQueue(trx: Transaction<StoreSchema>, name: string): Promise<void> {
  ensureQueueQuery ??= compileEnsureQueue(trx);
  const query: ReturnType<typeof compileEnsureQueue> = { ...ensureQueueQuery, parameters: [name, 0] };
  await trx.executeQuery(query);
}

/** The row of a queue that has settings or jobs. */
export async function queueRow(db: Db, name: string): Promise<QueueRow | undefined> {
  queueRowQuery ??= compileQueueRow(db);
  const query: ReturnType<typeof compileQueueRow> = { ...queueRowQuery, parameters: [name] };
  return (await db.executeQuery(query)).rows[0];
}
