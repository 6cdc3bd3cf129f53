import { type Kysely, sql } from 'kysely';

/**
 * The job tables of the PostgreSQL store, created at once in the state the SQLite schema reached
 * at its migration 0010 (jobs, job_labels, queues, job_deps, job_dirs_to_remove, job_results),
 * with the same indexes for the same questions (docs/storage.md explains each).
 *
 * Same column names and representations as SQLite, so that one row mapping
 * (`store/job-row.ts`, `store/limit-columns.ts`) serves both stores: times are bigint Unix
 * milliseconds (a `Date` round-trips exactly, and the pool reads int8 as a number), JSON is text
 * (written and read whole, never searched, so `jsonb` would only add a parse per write), and flags
 * are smallint 0/1 rather than boolean.
 *
 * Key text columns use the "C" collation: ids, owners, names and queue names compare byte by
 * byte as in SQLite, so the id order (creation order, for UUIDv7), the cursor's "older than"
 * and the id-prefix range `[p, p + 'g')` mean the same on both stores whatever the database's
 * locale, and their btree comparisons stay cheap.
 *
 * Written out rather than derived from the code: a later change is a new numbered migration.
 * Numbers 0002 to 0004 belong to users, webhooks and what follows them.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create table jobs (
    id text collate "C" primary key,
    status text collate "C" not null check (status in
      ('queued', 'running', 'paused', 'succeeded', 'failed', 'stopped', 'timed_out', 'cancelled', 'lost')),
    owner text collate "C" not null,
    name text collate "C",
    node text collate "C" not null,
    created_at bigint not null,
    started_at bigint,
    finished_at bigint,
    spec text not null,
    process text,
    stop_at bigint,
    stop_by text,
    stop_grace_ms bigint,
    stop_forced smallint not null default 0,
    exit_code integer,
    exit_signal text,
    exit_reason text,
    stdout_bytes bigint not null default 0,
    stderr_bytes bigint not null default 0,
    queue text collate "C" not null default 'default',
    priority integer not null default 0,
    run_at bigint,
    hold text collate "C" check (hold in ('after', 'delay', 'starting')),
    attempt integer not null default 1,
    retry_of text collate "C",
    retried_as text collate "C",
    paused_at bigint,
    dedupe_key text collate "C",
    dedupe_scope text collate "C",
    result_error text,
    progress text,
    usage text
  )`.execute(db);

  // History listing: the primary key serves "no filter" and the cursor; each filter its own
  // (filter..., id) range read backwards and stopped after one page.
  for (const [name, columns, where] of [
    ['jobs_by_status', 'status, id', null],
    ['jobs_by_owner', 'owner, id', null],
    ['jobs_by_owner_status', 'owner, status, id', null],
    // Partial: most jobs have no name, and `name = $1` implies `name is not null`.
    ['jobs_by_name', 'name, id', 'name is not null'],
    ['jobs_by_owner_name', 'owner, name, id', 'name is not null'],
    ['jobs_by_queue', 'queue, id', null],
    // Dispatch: the next jobs to start in a queue, in claim order.
    ['jobs_ready', 'queue, priority desc, id', "status = 'queued' and hold is null"],
    // Delayed jobs whose time has come, by run_at.
    ['jobs_delayed', 'run_at', "status = 'queued' and hold = 'delay'"],
    // A queue's waiting count and `maxWaiting` check.
    ['jobs_waiting_by_queue', 'queue', "status = 'queued'"],
    // How many of a queue hold a slot (counted inside every claim).
    ['jobs_active_by_queue', 'queue', "status in ('running', 'paused') or hold = 'starting'"],
    // Recovery: every job of a node that has (or may have) processes.
    ['jobs_active_by_node', 'node, id', "status in ('running', 'paused') or hold = 'starting'"],
    // Retention: finished jobs oldest first, for everyone and per owner.
    ['jobs_finished', 'finished_at, id', 'finished_at is not null'],
    ['jobs_finished_by_owner', 'owner, finished_at, id', 'finished_at is not null'],
  ] as const) {
    await sql`create index ${sql.raw(name)} on jobs (${sql.raw(columns)})${
      where === null ? sql`` : sql` where ${sql.raw(where)}`
    }`.execute(db);
  }
  // One queued or running job per dedupe key and scope. Unique, so that two nodes admitting the
  // same key at once cannot both succeed: the second insert waits for the first to commit, then
  // fails (23505 on this index), and the store reads the winner.
  await sql`create unique index jobs_dedupe on jobs (dedupe_scope, dedupe_key)
    where dedupe_key is not null and status in ('queued', 'running', 'paused')`.execute(db);

  await sql`create table job_labels (
    job_id text collate "C" not null references jobs (id) on delete cascade,
    key text collate "C" not null,
    value text collate "C" not null,
    owner text collate "C" not null,
    constraint job_labels_pk primary key (job_id, key)
  )`.execute(db);
  await sql`create index job_labels_by_label on job_labels (key, value, job_id)`.execute(db);
  await sql`create index job_labels_by_owner_label on job_labels (owner, key, value, job_id)`.execute(db);

  await sql`create table queues (
    name text collate "C" primary key,
    concurrency integer,
    max_waiting integer,
    paused smallint not null default 0,
    default_limits text,
    max_limits text,
    isolation text
  )`.execute(db);
  // The dispatcher walks the queues that have ready jobs; `default` is there from the start.
  await sql`insert into queues (name, paused) values ('default', 0)`.execute(db);

  await sql`create table job_deps (
    job_id text collate "C" not null references jobs (id) on delete cascade,
    dep_id text collate "C" not null,
    constraint job_deps_pk primary key (job_id, dep_id)
  )`.execute(db);
  await sql`create index job_deps_by_dep on job_deps (dep_id, job_id)`.execute(db);

  // Ids whose rows were deleted and whose directories are still to be removed (written with the
  // delete, so a crash between the two leaves a row here).
  // `node`: the node whose disk holds the directory; only that node can remove it.
  await sql`create table job_dirs_to_remove (id text collate "C" primary key, node text collate "C")`.execute(
    db,
  );
  await sql`create index job_dirs_to_remove_by_node on job_dirs_to_remove (node, id)`.execute(db);

  // The JSON a job left at JOBWORKER_RESULT, apart so that reading jobs never loads it.
  await sql`create table job_results (
    job_id text collate "C" primary key references jobs (id) on delete cascade,
    json text not null
  )`.execute(db);

  // Wake-ups for a cluster (PgJobStore.watch): `jobworker_work` (payload: the queue) when a job
  // becomes ready to claim or gives a slot back; `jobworker_job_ended` (payload: the id) when a
  // job reaches a final status. Sent at commit, so a listener that reads sees the change.
  await sql`create function jobs_notify() returns trigger language plpgsql as $$
    declare
      was_ready boolean := false;
      held_slot boolean := false;
      was_final boolean := false;
    begin
      if tg_op = 'UPDATE' then
        was_ready := old.status = 'queued' and old.hold is null;
        held_slot := old.status in ('running', 'paused') or coalesce(old.hold = 'starting', false);
        was_final := old.status not in ('queued', 'running', 'paused');
      end if;
      if new.status = 'queued' and new.hold is null and not was_ready then
        perform pg_notify('jobworker_work', new.queue);
      elsif held_slot and not (new.status in ('running', 'paused') or coalesce(new.hold = 'starting', false)) then
        perform pg_notify('jobworker_work', new.queue);
      end if;
      if new.status not in ('queued', 'running', 'paused') and not was_final then
        perform pg_notify('jobworker_job_ended', new.id);
      end if;
      return null;
    end
  $$`.execute(db);
  await sql`create trigger jobs_notify after insert or update of status, hold on jobs
    for each row execute function jobs_notify()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['job_results', 'job_dirs_to_remove', 'job_deps', 'queues', 'job_labels', 'jobs']) {
    await sql`drop table if exists ${sql.raw(table)}`.execute(db);
  }
  await sql`drop function if exists jobs_notify()`.execute(db);
}
