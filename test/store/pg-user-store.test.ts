import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { migratePostgres } from '../../src/store/postgres/migrate-postgres.ts';
import { openPostgres } from '../../src/store/postgres/open-postgres.ts';
import { PgUserStore } from '../../src/store/postgres/pg-user-store.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { describeUserStoreContract, user } from './user-store-contract.ts';

describeUserStoreContract('PgUserStore', async () => {
  const database = await createTestDatabase('users');
  const db = openPostgres(database.url);
  await migratePostgres(db);
  return {
    store: new PgUserStore(db),
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
    const [a, b] = nodes.map((db) => new PgUserStore(db)) as [PgUserStore, PgUserStore];
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
    const [a, b] = nodes.map((db) => new PgUserStore(db)) as [PgUserStore, PgUserStore];
    const outcomes = await Promise.allSettled([a.addUser(user('twice')), b.addUser(user('twice'))]);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(refused.length, 1);
    assert.equal((refused[0] as PromiseRejectedResult).reason.code, 'ALREADY_EXISTS');
  });
});
