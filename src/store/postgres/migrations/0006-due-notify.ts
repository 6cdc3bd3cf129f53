import { type Kysely, sql } from 'kysely';

/**
 * `jobs_notify` (0001-jobs) tells one more wake-up: `jobworker_due` (payload: its `run_at` in ms)
 * when a job comes to wait for a time (`hold = 'delay'`: a `delay`/`runAt`, or a retry's backoff).
 * Each node's dispatcher keeps the earliest such time to sleep until it; without this only the node
 * that wrote the job knew of it, and a job delayed by a node that then left, or a retry decided by
 * the node that swept a lost one, waited until some node happened to look again.
 *
 * Written out rather than derived from the code: a later change is a new migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create or replace function jobs_notify() returns trigger language plpgsql as $$
    declare
      was_ready boolean := false;
      held_slot boolean := false;
      was_final boolean := false;
      was_delayed boolean := false;
    begin
      if tg_op = 'UPDATE' then
        was_ready := old.status = 'queued' and old.hold is null;
        held_slot := old.status in ('running', 'paused') or coalesce(old.hold = 'starting', false);
        was_final := old.status not in ('queued', 'running', 'paused');
        was_delayed := old.status = 'queued' and coalesce(old.hold = 'delay', false);
      end if;
      if new.status = 'queued' and new.hold is null and not was_ready then
        perform pg_notify('jobworker_work', new.queue);
      elsif held_slot and not (new.status in ('running', 'paused') or coalesce(new.hold = 'starting', false)) then
        perform pg_notify('jobworker_work', new.queue);
      end if;
      if new.status = 'queued' and coalesce(new.hold = 'delay', false) and not was_delayed
          and new.run_at is not null then
        perform pg_notify('jobworker_due', new.run_at::text);
      end if;
      if new.status not in ('queued', 'running', 'paused') and not was_final then
        perform pg_notify('jobworker_job_ended', new.id);
      end if;
      return null;
    end
  $$`.execute(db);
}

/** Back to 0001-jobs's function. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`create or replace function jobs_notify() returns trigger language plpgsql as $$
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
}
