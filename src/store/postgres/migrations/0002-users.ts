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
 *   pages are read newest first by it. Numbers are taken at insert, not at commit, so an entry
 *   committed late by another node can land under a page already read: the trail is complete,
 *   its paging is a best effort under concurrent appends.
 *
 * Written out rather than derived from the code: a later change is a new migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Names, ids and actions in the "C" collation, as in 0001: they order and compare byte by byte
  // as in SQLite (the user list by name, the audit filters), whatever the database's locale.
  await sql`create table users (
    name text collate "C" primary key,
    role text not null check (role in ('admin', 'user', 'viewer')),
    run_as text,
    disabled smallint not null default 0 check (disabled in (0, 1)),
    created_at bigint not null,
    default_limits text,
    max_limits text,
    isolation text
  )`.execute(db);
  await sql`create table tokens (
    id text collate "C" primary key,
    "user" text collate "C" not null,
    label text,
    sha256 text collate "C" not null unique,
    created_at bigint not null,
    last_used_at bigint,
    expires_at bigint,
    revoked_at bigint
  )`.execute(db);
  await sql`create index tokens_by_user on tokens ("user", created_at)`.execute(db);
  await sql`create table audit (
    id bigint generated always as identity primary key,
    at bigint not null,
    "user" text collate "C",
    role text,
    source text,
    transport text,
    action text collate "C" not null,
    target text,
    result text not null
  )`.execute(db);
  await sql`create index audit_by_user on audit ("user", id)`.execute(db);
  await sql`create index audit_by_action on audit (action, id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit').execute();
  await db.schema.dropTable('tokens').execute();
  await db.schema.dropTable('users').execute();
}
