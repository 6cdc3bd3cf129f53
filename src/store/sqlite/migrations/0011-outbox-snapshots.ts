import { type Kysely, sql } from 'kysely';

/**
 * The outbox triggers of 0008 again, their snapshot with every column of `jobs`: 0008's list
 * predates `result_error` and `progress` (0006) and `usage` (0007), which the store then took
 * from the job as it was when the event was fanned out. A `job:started` fanned out late showed
 * later progress and usage (docs/webhooks.md promises the job as it was at the event), and a job
 * deleted before the fan-out lost them. PostgreSQL's triggers take the whole row (`to_jsonb`).
 * Outbox rows written before this migration keep the old snapshot and the old completion.
 *
 * Written out rather than derived from the code (see 0001): a later column is a new migration.
 */
const COLUMNS_0008 = [
  'id',
  'status',
  'owner',
  'name',
  'node',
  'created_at',
  'started_at',
  'finished_at',
  'spec',
  'process',
  'stop_at',
  'stop_by',
  'stop_grace_ms',
  'stop_forced',
  'exit_code',
  'exit_signal',
  'exit_reason',
  'stdout_bytes',
  'stderr_bytes',
  'queue',
  'priority',
  'dedupe_key',
  'dedupe_scope',
  'run_at',
  'hold',
  'attempt',
  'retry_of',
  'retried_as',
  'paused_at',
];

const COLUMNS_0011 = [...COLUMNS_0008, 'result_error', 'progress', 'usage'];

const TRIGGERS = ['jobs_outbox_insert', 'jobs_outbox_started', 'jobs_outbox_finished'];

/** The three outbox triggers of 0008, their snapshot of `columns`. */
async function createOutboxTriggers(db: Kysely<unknown>, columns: readonly string[]): Promise<void> {
  const wanted = sql.raw(`(exists (select 1 from webhooks) or instr(new.spec, '"notify":') > 0)`);
  const snapshot = sql.raw(`json_object(${columns.map((c) => `'${c}', new.${c}`).join(', ')})`);
  const active = sql.raw("('queued', 'running', 'paused')");
  await sql`create trigger jobs_outbox_insert after insert on jobs when ${wanted} begin
    insert into webhook_outbox (event, job_id, at, snapshot) values ('job:queued', new.id, new.created_at, ${snapshot});
    insert into webhook_outbox (event, job_id, at, snapshot)
      select 'job:finished', new.id, coalesce(new.finished_at, new.created_at), ${snapshot}
      where new.status not in ${active};
  end`.execute(db);
  await sql`create trigger jobs_outbox_started after update of status on jobs
    when old.status = 'queued' and new.status = 'running' and ${wanted} begin
    insert into webhook_outbox (event, job_id, at, snapshot)
      values ('job:started', new.id, coalesce(new.started_at, new.created_at), ${snapshot});
  end`.execute(db);
  await sql`create trigger jobs_outbox_finished after update of status on jobs
    when old.status in ${active} and new.status not in ${active} and ${wanted} begin
    insert into webhook_outbox (event, job_id, at, snapshot)
      values ('job:finished', new.id, coalesce(new.finished_at, new.created_at), ${snapshot});
  end`.execute(db);
}

async function dropOutboxTriggers(db: Kysely<unknown>): Promise<void> {
  for (const trigger of TRIGGERS) await sql`drop trigger if exists ${sql.raw(trigger)}`.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await dropOutboxTriggers(db);
  await createOutboxTriggers(db, COLUMNS_0011);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await dropOutboxTriggers(db);
  await createOutboxTriggers(db, COLUMNS_0008);
}
