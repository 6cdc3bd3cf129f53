import { type Kysely, sql } from 'kysely';

/**
 * The jobs table, the job_labels side table and one index per list query form: every list
 * reads an index range in id order (ids are UUIDv7, so id order is creation order) and stops
 * after one page, never sorting and never scanning the table. docs/storage.md explains each.
 *
 * Frozen once released (0.1.0 is the first release; `paused` joined the status list before it):
 * a later change is a new numbered migration, so the status list below is written out rather
 * than imported.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statuses = sql.join(
    ['queued', 'running', 'paused', 'succeeded', 'failed', 'stopped', 'timed_out', 'cancelled', 'lost'].map(
      (s) => sql.lit(s),
    ),
  );
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in (${statuses})`))
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('node', 'text', (c) => c.notNull())
    .addColumn('created_at', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'integer')
    .addColumn('finished_at', 'integer')
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('process', 'text')
    .addColumn('stop_at', 'integer')
    .addColumn('stop_by', 'text')
    .addColumn('stop_grace_ms', 'integer')
    .addColumn('stop_forced', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('exit_code', 'integer')
    .addColumn('exit_signal', 'text')
    .addColumn('exit_reason', 'text')
    .addColumn('stdout_bytes', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('stderr_bytes', 'integer', (c) => c.notNull().defaultTo(0))
    .modifyEnd(sql`strict`)
    .execute();

  // No filter and the cursor use the primary key's own index.
  await db.schema.createIndex('jobs_by_status').on('jobs').columns(['status', 'id']).execute();
  await db.schema.createIndex('jobs_by_owner').on('jobs').columns(['owner', 'id']).execute();
  await db.schema.createIndex('jobs_by_owner_status').on('jobs').columns(['owner', 'status', 'id']).execute();
  // Partial: most jobs have no name, and `name = ?` implies `name is not null`.
  await db.schema
    .createIndex('jobs_by_name')
    .on('jobs')
    .columns(['name', 'id'])
    .where(sql.ref('name'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('jobs_by_owner_name')
    .on('jobs')
    .columns(['owner', 'name', 'id'])
    .where(sql.ref('name'), 'is not', null)
    .execute();
  // Recovery's question at start, answered from an index as small as the running set.
  await db.schema
    .createIndex('jobs_running_by_node')
    .on('jobs')
    .columns(['node', 'id'])
    .where(sql.ref('status'), '=', 'running')
    .execute();

  await db.schema
    .createTable('job_labels')
    .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('job_labels_pk', ['job_id', 'key'])
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema
    .createIndex('job_labels_by_label')
    .on('job_labels')
    .columns(['key', 'value', 'job_id'])
    .execute();
  await db.schema
    .createIndex('job_labels_by_owner_label')
    .on('job_labels')
    .columns(['owner', 'key', 'value', 'job_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('job_labels').execute();
  await db.schema.dropTable('jobs').execute();
}
