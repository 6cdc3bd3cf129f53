import { type Kysely, sql, type Transaction } from 'kysely';
import type { JobRow, QueueRow, StoreSchema } from '../schema.ts';

/**
 * The statements of dispatch on PostgreSQL, each a range of one partial index whatever the size
 * of the history (test/store/pg-job-store.test.ts checks their plans at scale):
 * `jobs_active_by_queue`, `jobs_ready`, `jobs_delayed`.
 */

/** How many jobs of a queue hold a slot: running, paused, or being started. */
export function countActiveQuery(db: Kysely<StoreSchema> | Transaction<StoreSchema>, queue: string) {
  return db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('queue', '=', queue)
    .where(sql<boolean>`(status in ('running', 'paused') or hold = 'starting')`);
}

/**
 * Claims up to `n` ready jobs of a queue for `node`, highest priority then oldest first.
 * `skip locked` passes over a ready job whose row another transaction holds (being cancelled, say)
 * rather than waiting for it.
 */
export function claimStatement(queue: string, node: string, n: number) {
  return sql<JobRow>`update jobs set hold = 'starting', node = ${node}
    where id in (
      select id from jobs where queue = ${queue} and status = 'queued' and hold is null
      order by priority desc, id limit ${n} for update skip locked)
    returning *`;
}

/**
 * The settings of every queue with a ready job: a skip scan of `jobs_ready`, each step finding the
 * next queue name after the last with one index probe, so the cost is per queue with ready jobs,
 * not per ready job nor per queue ever named. A queue whose row is missing is listed all the same,
 * with no settings (`claimReady` makes its row again): a node of the version before queues were
 * forgotten makes no row for a queue that has one when it looks, and a newer node may forget that
 * row before its job commits, during a rolling upgrade.
 */
export function readyQueuesStatement() {
  return sql<QueueRow>`
    with recursive ready(name) as (
      select (select min(queue) from jobs where status = 'queued' and hold is null)
      union all
      select (select min(queue) from jobs
              where status = 'queued' and hold is null and queue > ready.name)
      from ready where ready.name is not null
    )
    select ready.name, q.concurrency, q.max_waiting, coalesce(q.paused, 0) as paused, q.default_limits,
      q.max_limits, q.isolation
    from ready left join queues q on q.name = ready.name
    where ready.name is not null
    order by ready.name`;
}

/**
 * Every queue's row with its counts, by name, in one statement (one snapshot): each count is one
 * walk of its partial index (`jobs_waiting_by_queue`, `jobs_active_by_queue`), grouped by queue,
 * never the history. `queued` counts the jobs being started too (`starting`), which hold a slot.
 */
export function queueStatesStatement() {
  return sql<QueueRow & { queued: string; starting: string; running: string }>`
    select q.name, q.concurrency, q.max_waiting, q.paused, q.default_limits, q.max_limits, q.isolation,
      coalesce(w.queued, 0) as queued, coalesce(w.starting, 0) as starting, coalesce(a.running, 0) as running
    from queues q
    left join (select queue, count(*) as queued, count(*) filter (where hold = 'starting') as starting
      from jobs where status = 'queued' group by queue) w on w.queue = q.name
    left join (select queue, count(*) as running from jobs
      where status in ('running', 'paused') or hold = 'starting' group by queue) a on a.queue = q.name
    order by q.name`;
}

/** The earliest `run_at` of a delayed job. */
export function nextRunAtQuery(db: Kysely<StoreSchema>) {
  return db
    .selectFrom('jobs')
    .select('run_at')
    .where(sql<boolean>`status = 'queued' and hold = 'delay'`)
    .orderBy('run_at')
    .limit(1);
}
