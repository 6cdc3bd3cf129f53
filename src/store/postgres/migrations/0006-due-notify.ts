import { type Kysely, sql } from 'kysely';

/**
 * One more wake-up beside `jobs_notify` (0001-jobs): `jobworker_due` (payload: its `run_at` in ms)
 * when a job comes to wait for a time (`hold = 'delay'`: a `delay`/`runAt`, or a retry's backoff).
 * Each node's dispatcher keeps the earliest such time to sleep until it; without this only the node
 * that wrote the job knew of it, and a job delayed by a node that then left, or a retry decided by
 * the node that swept a lost one, waited until some node happened to look again.
 *
 * Triggers of their own, whose `when` lets the function run only for a job that came to wait (a
 * row it already waited in, as an update of another column, tells nothing): `jobs_notify` stays as
 * 0001 made it, and `down` only drops what this adds.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create function jobs_due_notify() returns trigger language plpgsql as $$
    begin
      perform pg_notify('jobworker_due', new.run_at::text);
      return null;
    end
  $$`.execute(db);
  await sql`create trigger jobs_due_notify_insert after insert on jobs for each row
    when (new.status = 'queued' and new.hold = 'delay' and new.run_at is not null)
    execute function jobs_due_notify()`.execute(db);
  await sql`create trigger jobs_due_notify_update after update of status, hold on jobs for each row
    when (new.status = 'queued' and new.hold = 'delay' and new.run_at is not null
      and not (old.status = 'queued' and coalesce(old.hold = 'delay', false)))
    execute function jobs_due_notify()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger jobs_due_notify_update on jobs`.execute(db);
  await sql`drop trigger jobs_due_notify_insert on jobs`.execute(db);
  await sql`drop function jobs_due_notify()`.execute(db);
}
