import { type Kysely, sql } from 'kysely';

/**
 * Queues and scheduling (docs/queues.md): the scheduling columns of a job, the queue settings,
 * and the dependency edges. Each dispatch question is answered from an index range:
 * - the next jobs to start in a queue: `jobs_ready`, in (priority desc, id) order;
 * - delayed jobs whose time has come: `jobs_delayed`, by run_at;
 * - one queued or running job per dedupe key: the unique partial index `jobs_dedupe`;
 * - how many of a queue hold a slot: `jobs_active_by_queue` (running, paused, or being started).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Plain DDL: SQLite adds columns one statement at a time, and these read best as SQL.
  for (const column of [
    sql`queue text not null default 'default'`,
    sql`priority integer not null default 0`,
    sql`run_at integer`,
    sql`hold text check (hold in ('after', 'delay', 'starting'))`,
    sql`attempt integer not null default 1`,
    sql`retry_of text`,
    sql`retried_as text`,
    sql`paused_at integer`,
    sql`dedupe_key text`,
  ]) {
    await sql`alter table jobs add column ${column}`.execute(db);
  }

  await db.schema
    .createIndex('jobs_ready')
    .on('jobs')
    .expression(sql`queue, priority desc, id`)
    .where(sql<boolean>`status = 'queued' and hold is null`)
    .execute();
  await db.schema
    .createIndex('jobs_delayed')
    .on('jobs')
    .columns(['run_at'])
    .where(sql<boolean>`status = 'queued' and hold = 'delay'`)
    .execute();
  await db.schema
    .createIndex('jobs_waiting_by_queue')
    .on('jobs')
    .columns(['queue'])
    .where(sql<boolean>`status = 'queued'`)
    .execute();
  await db.schema
    .createIndex('jobs_active_by_queue')
    .on('jobs')
    .columns(['queue'])
    .where(sql<boolean>`status in ('running', 'paused') or hold = 'starting'`)
    .execute();
  await db.schema
    .createIndex('jobs_dedupe')
    .on('jobs')
    .columns(['dedupe_key'])
    .unique()
    .where(sql<boolean>`dedupe_key is not null and status in ('queued', 'running', 'paused')`)
    .execute();
  // Recovery reads every job of this node that has (or may have) processes.
  await db.schema.dropIndex('jobs_running_by_node').execute();
  await db.schema
    .createIndex('jobs_active_by_node')
    .on('jobs')
    .columns(['node', 'id'])
    .where(sql<boolean>`status in ('running', 'paused') or hold = 'starting'`)
    .execute();

  await db.schema
    .createTable('queues')
    .addColumn('name', 'text', (c) => c.primaryKey().notNull())
    .addColumn('concurrency', 'integer')
    .addColumn('max_waiting', 'integer')
    .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
    .modifyEnd(sql`strict`)
    .execute();
  // Every job so far was in `default`: the dispatcher walks the queues table, so it must be there.
  await sql`insert into queues (name, paused) values ('default', 0)`.execute(db);
  await db.schema
    .createTable('job_deps')
    .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('dep_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('job_deps_pk', ['job_id', 'dep_id'])
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema.createIndex('job_deps_by_dep').on('job_deps').columns(['dep_id', 'job_id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('job_deps').execute();
  await db.schema.dropTable('queues').execute();
  for (const index of [
    'jobs_ready',
    'jobs_delayed',
    'jobs_waiting_by_queue',
    'jobs_active_by_queue',
    'jobs_dedupe',
    'jobs_active_by_node',
  ]) {
    await db.schema.dropIndex(index).execute();
  }
  await db.schema
    .createIndex('jobs_running_by_node')
    .on('jobs')
    .columns(['node', 'id'])
    .where(sql.ref('status'), '=', 'running')
    .execute();
  for (const column of [
    'queue',
    'priority',
    'run_at',
    'hold',
    'attempt',
    'retry_of',
    'retried_as',
    'paused_at',
    'dedupe_key',
  ]) {
    await db.schema.alterTable('jobs').dropColumn(column).execute();
  }
}
