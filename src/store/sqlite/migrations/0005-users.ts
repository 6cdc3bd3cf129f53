import { type Kysely, sql } from 'kysely';

/**
 * Users, their tokens and the audit trail (docs/security.md), in the job database so that one
 * file holds the server's whole state and one backup covers it.
 * - `users`: one row per user; `run_as` is the OS account its jobs run as (null: none set).
 * - `tokens`: a token's SHA-256, never the token. Revoked tokens keep their row (their history is
 *   listed); a removed user's tokens are revoked, not deleted. `sha256` is unique: authentication
 *   looks a token up by it.
 * - `audit`: append-only, newest first by its integer id (assigned in order of appending); the
 *   per-user and per-action filters are one index range each.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('name', 'text', (c) => c.primaryKey().notNull())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'user', 'viewer')`))
    .addColumn('run_as', 'text')
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'integer', (c) => c.notNull())
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema
    .createTable('tokens')
    .addColumn('id', 'text', (c) => c.primaryKey().notNull())
    .addColumn('user', 'text', (c) => c.notNull())
    .addColumn('label', 'text')
    .addColumn('sha256', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'integer', (c) => c.notNull())
    .addColumn('last_used_at', 'integer')
    .addColumn('expires_at', 'integer')
    .addColumn('revoked_at', 'integer')
    .modifyEnd(sql`without rowid, strict`)
    .execute();
  await db.schema.createIndex('tokens_by_user').on('tokens').columns(['user', 'created_at']).execute();
  await db.schema
    .createTable('audit')
    .addColumn('id', 'integer', (c) => c.primaryKey().notNull())
    .addColumn('at', 'integer', (c) => c.notNull())
    .addColumn('user', 'text')
    .addColumn('role', 'text')
    .addColumn('source', 'text')
    .addColumn('transport', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text')
    .addColumn('result', 'text', (c) => c.notNull())
    .modifyEnd(sql`strict`)
    .execute();
  await db.schema.createIndex('audit_by_user').on('audit').columns(['user', 'id']).execute();
  await db.schema.createIndex('audit_by_action').on('audit').columns(['action', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit').execute();
  await db.schema.dropTable('tokens').execute();
  await db.schema.dropTable('users').execute();
}
