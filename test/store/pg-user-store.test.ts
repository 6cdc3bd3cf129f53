import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { hashToken } from '../../src/auth/token.ts';
import { migratePostgres } from '../../src/store/postgres/migrate-postgres.ts';
import { openPostgres } from '../../src/store/postgres/open-postgres.ts';
import { PgUserStore } from '../../src/store/postgres/pg-user-store.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';
import { describeUserStoreContract, token, user } from './user-store-contract.ts';

describeUserStoreContract('PgUserStore', async () => {
  const database = await createTestDatabase('users');
  const db = openPostgres(database.url);
  await migratePostgres(db);
  return {
    store: new PgUserStore(db, database.url),
    async cleanup() {
      await db.destroy();
      await database.drop();
    },
  };
});

describe('PgUserStore across nodes', () => {
  let database: TestDatabase;
  // Two pools on one database: what two nodes of a cluster are to each other.
  let nodes: Kysely<StoreSchema>[];
  before(async () => {
    database = await createTestDatabase('users_nodes');
    nodes = [openPostgres(database.url), openPostgres(database.url)];
    await migratePostgres(nodes[0]!);
  });
  after(async () => {
    for (const db of nodes) await db.destroy();
    await database.drop();
  });

  it('keeps one enabled admin when two nodes disable or remove the last two at once', async () => {
    const [a, b] = nodes.map((db) => new PgUserStore(db, database.url)) as [PgUserStore, PgUserStore];
    for (let round = 0; round < 20; round++) {
      // Set up directly (the store would refuse): x and y are the only enabled admins.
      await nodes[0]!.updateTable('users').set({ disabled: 1 }).execute();
      const [x, y] = [`x${round}`, `y${round}`];
      await a.addUser(user(x, 'admin'));
      await a.addUser(user(y, 'admin'));
      const outcomes = await Promise.allSettled(
        round % 2 === 0
          ? [a.setUser(x, { disabled: true }), b.setUser(y, { role: 'viewer' })]
          : [a.removeUser(x, new Date()), b.setUser(y, { disabled: true })],
      );
      const refused = outcomes.filter((o) => o.status === 'rejected');
      assert.equal(refused.length, 1, `round ${round}: exactly one of the two changes is refused`);
      assert.equal((refused[0] as PromiseRejectedResult).reason.code, 'LAST_ADMIN');
      const enabledAdmins = (await b.listUsers()).filter((u) => u.role === 'admin' && !u.disabled);
      assert.equal(enabledAdmins.length, 1, `round ${round}: one enabled admin is left`);
    }
  });

  it('adds a name once when two nodes add it at once', async () => {
    const [a, b] = nodes.map((db) => new PgUserStore(db, database.url)) as [PgUserStore, PgUserStore];
    const outcomes = await Promise.allSettled([a.addUser(user('twice')), b.addUser(user('twice'))]);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(refused.length, 1);
    assert.equal((refused[0] as PromiseRejectedResult).reason.code, 'ALREADY_EXISTS');
  });
  /**
   * Another node's transaction, held open half-way: `hold` runs its first statements, `commit`
   * ends it. `waiting` says whether any other session of the database waits for a lock.
   */
  async function halfDone(
    statements: string[],
  ): Promise<{ commit(): Promise<void>; waiting(): Promise<boolean> }> {
    const held = new pg.Client({ connectionString: database.url });
    const monitor = new pg.Client({ connectionString: database.url });
    await Promise.all([held.connect(), monitor.connect()]);
    await held.query('begin');
    for (const statement of statements) await held.query(statement);
    return {
      async commit() {
        await held.query('commit');
        await Promise.all([held.end(), monitor.end()]);
      },
      async waiting() {
        const { rows } = await monitor.query(
          `select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
        );
        return (rows[0] as { n: number }).n > 0;
      },
    };
  }

  /** Settles `promise` once it has settled or waits for a lock, whichever comes first. */
  async function settledOrWaiting(promise: Promise<unknown>, waiting: () => Promise<boolean>): Promise<void> {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    await until('the store call to settle or wait for a lock', async () => settled || (await waiting()));
  }

  it('adds no token for a user another node is removing: the token waits, then finds no user', async () => {
    const [a] = nodes.map((db) => new PgUserStore(db, database.url)) as [PgUserStore];
    await a.addUser(user('going'));
    const removal = await halfDone([
      `select name from users where name = 'going' for update`,
      `delete from users where name = 'going'`,
    ]);
    const adding = a.addToken(token('t-going', 'going'));
    await settledOrWaiting(adding, removal.waiting);
    await removal.commit();
    await assert.rejects(adding, { code: 'NOT_FOUND' });
    assert.deepEqual(await a.listTokens({ user: 'going' }), []);
  });

  it('revokes a token another node adds while the user is removed: the removal waits for it', async () => {
    const [a] = nodes.map((db) => new PgUserStore(db, database.url)) as [PgUserStore];
    await a.addUser(user('leaving'));
    const adding = await halfDone([
      `select name from users where name = 'leaving' for share`,
      `insert into tokens (id, "user", label, sha256, created_at, last_used_at, expires_at, revoked_at)
        values ('t-leaving', 'leaving', null, '${hashToken('t-leaving')}', 0, null, null, null)`,
    ]);
    const removing = a.removeUser('leaving', new Date(Date.UTC(2030, 0, 2)));
    await settledOrWaiting(removing, adding.waiting);
    await adding.commit();
    const { revoked } = await removing;
    assert.deepEqual(
      revoked.map((t) => t.id),
      ['t-leaving'],
    );
    const [stored] = await a.listTokens({ user: 'leaving' });
    assert.notEqual(stored?.revokedAt, null, 'the token is revoked');
  });
});
