import { type Kysely, sql } from 'kysely';

/**
 * Users, their tokens and the audit trail (docs/security.md): the final state of the SQLite
 * migrations 0005 (tables), 0007 (`users.default_limits`, `users.max_limits`) and 0009
 * (`users.isolation`).
 *
 * The columns keep SQLite's names and representations (times as bigint Unix ms, JSON as text,
 * flags as smallint 0/1) so that one row mapping (`UserRow`, `TokenRow`, `AuditRow` in
 * store/schema.ts) and one store contract serve both databases.
 * - `tokens.sha256` is unique: authentication looks a token up by it. No foreign key to `users`:
 *   a removed user's tokens keep their rows, revoked, for their history.
 * - `audit.id` is an identity column, so entries are numbered in the order they are appended;
 *   pages are read newest first by it.
 *
 * Written out rather than derived from the code: a later change is a new migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'user', 'viewer')`))
    .addColumn('run_as', 'text')
    .addColumn('disabled', 'smallint', (c) => c.notNull().defaultTo(0).check(sql`disabled in (0, 1)`))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('default_limits', 'text')
    .addColumn('max_limits', 'text')
    .addColumn('isolation', 'text')
    .execute();
  await db.schema
    .createTable('tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user', 'text', (c) => c.notNull())
    .addColumn('label', 'text')
    .addColumn('sha256', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('expires_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('tokens_by_user').on('tokens').columns(['user', 'created_at']).execute();
  await db.schema
    .createTable('audit')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('user', 'text')
    .addColumn('role', 'text')
    .addColumn('source', 'text')
    .addColumn('transport', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text')
    .addColumn('result', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_by_user').on('audit').columns(['user', 'id']).execute();
  await db.schema.createIndex('audit_by_action').on('audit').columns(['action', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit').execute();
  await db.schema.dropTable('tokens').execute();
  await db.schema.dropTable('users').execute();
}
