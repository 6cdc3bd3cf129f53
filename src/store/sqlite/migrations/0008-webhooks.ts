import { type Kysely, sql } from 'kysely';

/**
 * Webhooks (docs/webhooks.md) and the counts behind the `jobworker_jobs` gauge (docs/metrics.md).
 *
 * - `webhooks`: the server-wide webhooks an admin added; `events` is a JSON array of event names.
 * - `webhook_outbox`: one row per job event someone may want delivered, written by the triggers
 *   below in the very transaction that changed the job, whichever path changed it (a batched
 *   start or end, a cancel, a retry, a dependency settled). A server killed right after a job
 *   ended therefore still has the event on record. `snapshot` is the job row as JSON at that
 *   moment, so the delivery shows the job as it was even if it changed or was deleted since.
 *   The triggers fire only for jobs with a `notify` or while any server-wide webhook exists, so
 *   a server without webhooks pays one `exists` look per state change and nothing more.
 * - `webhook_deliveries`: one row per event and target, with its attempts and the last answer;
 *   the dispatcher fans outbox rows out into it (and deletes them) in one transaction.
 * - `job_status_counts`: jobs per status, kept by triggers on every insert, status change and
 *   delete, so a metrics scrape reads nine rows instead of counting a million.
 *
 * Written out rather than derived from the code (see 0001): a later change is a new migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('webhooks')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('created_at', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema
    .createTable('webhook_outbox')
    .addColumn('seq', 'integer', (c) => c.primaryKey().notNull())
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('at', 'integer', (c) => c.notNull())
    .addColumn('snapshot', 'text', (c) => c.notNull())
    .modifyEnd(sql`strict`)
    .execute();
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    // null: the job's own `notify`; else the server-wide webhook's id.
    .addColumn('webhook_id', 'text')
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('trusted', 'integer', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'delivered', 'failed')`))
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_at', 'integer')
    .addColumn('last_at', 'integer')
    .addColumn('last_status', 'integer')
    .addColumn('last_error', 'text')
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_due')
    .on('webhook_deliveries')
    .columns(['next_at'])
    .where(sql.ref('status'), '=', sql.lit('pending'))
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_by_owner')
    .on('webhook_deliveries')
    .columns(['owner', 'id'])
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_by_job')
    .on('webhook_deliveries')
    .columns(['job_id', 'id'])
    .execute();

  // A substring look rather than json_extract, which would parse the spec on every change: the
  // spec is written by JSON.stringify, where `"notify":` can only be a key (inside a string its
  // quotes would be escaped). A `notify` label key matches too: its outbox row then fans out to
  // no target, harmlessly.
  const wanted = sql.raw(`(exists (select 1 from webhooks) or instr(new.spec, '"notify":') > 0)`);
  const snapshot = sql.raw(
    `json_object(${[
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
    ]
      .map((c) => `'${c}', new.${c}`)
      .join(', ')})`,
  );
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

  await db.schema
    .createTable('job_status_counts')
    .addColumn('status', 'text', (c) => c.primaryKey().notNull())
    .addColumn('n', 'integer', (c) => c.notNull())
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  // One row per status, so that the triggers only update (a migration that adds a status seeds
  // its row). Seeded with one count over the table, the last one ever made.
  const statuses = [
    'queued',
    'running',
    'paused',
    'succeeded',
    'failed',
    'stopped',
    'timed_out',
    'cancelled',
    'lost',
  ];
  for (const status of statuses) {
    await sql`insert into job_status_counts (status, n)
      values (${status}, (select count(*) from jobs where status = ${status}))`.execute(db);
  }
  await sql`create trigger jobs_count_insert after insert on jobs begin
    update job_status_counts set n = n + 1 where status = new.status;
  end`.execute(db);
  await sql`create trigger jobs_count_update after update of status on jobs
    when old.status is not new.status begin
    update job_status_counts set n = n - 1 where status = old.status;
    update job_status_counts set n = n + 1 where status = new.status;
  end`.execute(db);
  await sql`create trigger jobs_count_delete after delete on jobs begin
    update job_status_counts set n = n - 1 where status = old.status;
  end`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const trigger of [
    'jobs_count_delete',
    'jobs_count_update',
    'jobs_count_insert',
    'jobs_outbox_finished',
    'jobs_outbox_started',
    'jobs_outbox_insert',
  ]) {
    await sql`drop trigger if exists ${sql.raw(trigger)}`.execute(db);
  }
  for (const table of ['job_status_counts', 'webhook_deliveries', 'webhook_outbox', 'webhooks']) {
    await db.schema.dropTable(table).execute();
  }
}
