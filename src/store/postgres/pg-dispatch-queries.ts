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
 * not per ready job nor per queue ever named.
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
    select q.name, q.concurrency, q.max_waiting, q.paused, q.default_limits, q.max_limits, q.isolation
    from ready join queues q on q.name = ready.name
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
