import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { toErrorResponse } from '../../src/api/rest/error-mapping.ts';
import { migratePostgres } from '../../src/store/postgres/migrate-postgres.ts';
import { openPostgres } from '../../src/store/postgres/open-postgres.ts';
import { PgUserStore } from '../../src/store/postgres/pg-user-store.ts';
import { PgWebhookStore } from '../../src/store/postgres/pg-webhook-store.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { token, user } from './user-store-contract.ts';
import { webhook } from './webhook-store-contract.ts';

/**
 * The user and webhook stores on PostgreSQL report a database they cannot use as the job store
 * does (`pgStoreError`): 503 `STORE_UNAVAILABLE` naming it, password hidden, never 500 `INTERNAL`.
 */

/** How the REST API answers `err`. */
function answered(err: unknown): { status: number; code: string; message: string } {
  const { status, body } = toErrorResponse(err);
  return { status, code: body.error.code, message: body.error.message };
}

async function refusal(work: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  try {
    await work;
  } catch (err) {
    return answered(err);
  }
  assert.fail('expected the call to fail');
}

describe('PgUserStore and PgWebhookStore with PostgreSQL unreachable', () => {
  // Nothing listens on port 1: every connection is refused.
  const url = 'postgres://jw:secret@127.0.0.1:1/nowhere';
  const db = openPostgres(url, { connectionTimeoutMs: 2000 });
  after(() => db.destroy());

  it('answers creating a user or a token 503 STORE_UNAVAILABLE, naming the database without its password', async () => {
    const users = new PgUserStore(db, url);
    for (const call of [
      () => users.addUser(user('alice')),
      () => users.addToken(token('t1', 'alice')),
      () => users.listUsers(),
    ]) {
      const got = await refusal(call());
      assert.equal(got.status, 503, got.message);
      assert.equal(got.code, 'STORE_UNAVAILABLE');
      assert.match(
        got.message,
        /The job database postgres:\/\/jw:\*\*\*@127\.0\.0\.1:1\/nowhere is unreachable/,
      );
    }
  });

  it('answers managing webhooks 503 STORE_UNAVAILABLE', async () => {
    const webhooks = new PgWebhookStore(db, url);
    for (const call of [
      () => webhooks.addWebhook(webhook(1)),
      () => webhooks.listWebhooks(),
      () => webhooks.removeWebhook('x'),
    ]) {
      const got = await refusal(call());
      assert.equal(got.status, 503, got.message);
      assert.equal(got.code, 'STORE_UNAVAILABLE');
    }
  });
});

describe('PgUserStore and PgWebhookStore waiting past the lock timeout', () => {
  let database: TestDatabase;
  let holder: pg.Client;
  let db: ReturnType<typeof openPostgres>;
  before(async () => {
    database = await createTestDatabase('store_errors');
    // The main pool's `lock_timeout`, as a node sets it (docs/cluster.md, "Frozen nodes"), short.
    db = openPostgres(database.url, { lockTimeoutMs: 200 });
    await migratePostgres(db);
    holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
  });
  after(async () => {
    await holder.end();
    await db.destroy();
    await database.drop();
  });

  /** Runs `work` while another session holds `table` locked, then lets it go. */
  async function whileLocked<T>(table: string, work: () => Promise<T>): Promise<T> {
    await holder.query('begin');
    await holder.query(`lock table ${table} in access exclusive mode`);
    try {
      return await work();
    } finally {
      await holder.query('rollback');
    }
  }

  it('answers a user change 503 STORE_UNAVAILABLE saying the database is busy', async () => {
    const users = new PgUserStore(db, database.url);
    const got = await whileLocked('users', () => refusal(users.addUser(user('bob'))));
    assert.equal(got.status, 503, got.message);
    assert.equal(got.code, 'STORE_UNAVAILABLE');
    assert.match(got.message, /is busy: .*\(PostgreSQL 55P03\); try again/);
    await users.addUser(user('bob'));
  });

  it('answers adding a webhook 503 STORE_UNAVAILABLE saying the database is busy', async () => {
    const webhooks = new PgWebhookStore(db, database.url);
    const got = await whileLocked('webhooks', () => refusal(webhooks.addWebhook(webhook(2))));
    assert.equal(got.status, 503, got.message);
    assert.equal(got.code, 'STORE_UNAVAILABLE');
    assert.match(got.message, /is busy: .*\(PostgreSQL 55P03\)/);
  });

  it('still answers a refusal made on purpose as it is', async () => {
    const users = new PgUserStore(db, database.url);
    await users.addUser(user('carol'));
    const got = await refusal(users.addUser(user('carol')));
    assert.equal(got.status, 409);
    assert.equal(got.code, 'ALREADY_EXISTS');
  });
});
