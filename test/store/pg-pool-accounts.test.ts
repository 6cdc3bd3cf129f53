import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UID_POOL } from '../../src/core/pool-uids.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';

const NONE_USED = { usedUids: new Set<number>(), usedGids: new Set<number>() };

describe("the pool accounts a cluster's nodes share (PgPoolAccounts)", () => {
  let database: TestDatabase;
  let a: PgJobStore;
  let b: PgJobStore;
  before(async () => {
    database = await createTestDatabase('pool-accounts');
    a = await PgJobStore.open(database.url);
    b = await PgJobStore.open(database.url);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  it('gives a user one uid on every node, and each user a uid of its own, whichever node gives it', async () => {
    // Each user's first job comes through another node.
    const bob = await a.poolAccounts.allocate('bob', NONE_USED);
    const carol = await b.poolAccounts.allocate('carol', NONE_USED);
    assert.deepEqual([bob, carol], [UID_POOL.first, UID_POOL.first + 1]);
    assert.equal(await b.poolAccounts.allocate('bob', NONE_USED), bob, "node B reads node A's");
    assert.equal(b.poolAccounts.uidOf('bob'), bob, 'and keeps it: an allocation never changes');
    assert.equal(a.poolAccounts.uidOf('carol'), undefined, 'not read yet');
    assert.equal(await a.poolAccounts.find('carol'), carol, 'read from the store');
    assert.equal(await a.poolAccounts.find('dave'), undefined);
    // A uid the giving node's passwd or group names is passed over.
    const used = { usedUids: new Set([UID_POOL.first + 2]), usedGids: new Set([UID_POOL.first + 3]) };
    assert.equal(await a.poolAccounts.allocate('dave', used), UID_POOL.first + 4);
  });

  it('two nodes giving uids at once never give one uid twice, nor one user two', async () => {
    const users = Array.from({ length: 12 }, (_, i) => `racer-${i}`);
    const given = await Promise.all(
      users.flatMap((user) => [
        a.poolAccounts.allocate(user, NONE_USED),
        b.poolAccounts.allocate(user, NONE_USED),
      ]),
    );
    for (let i = 0; i < users.length; i++) assert.equal(given[2 * i], given[2 * i + 1], users[i]);
    const uids = given.filter((_, i) => i % 2 === 0);
    assert.equal(new Set(uids).size, users.length, `distinct: ${uids.join(' ')}`);
  });

  it("takes in a node's own allocations from before, and names those the pool gives otherwise", async () => {
    const database2 = await createTestDatabase('pool-adopt');
    const first = await PgJobStore.open(database2.url);
    const second = await PgJobStore.open(database2.url);
    try {
      const at = '2026-01-02T03:04:05.000Z';
      // Node one's accounts.json: erin and frank. Node two's: frank as another uid, gina as erin's.
      assert.deepEqual(
        await first.poolAccounts.adopt([
          { user: 'erin', uid: 61200, allocatedAt: at },
          { user: 'frank', uid: 61201, allocatedAt: at },
        ]),
        [],
      );
      const conflicts = await second.poolAccounts.adopt([
        { user: 'frank', uid: 61300, allocatedAt: at },
        { user: 'gina', uid: 61200, allocatedAt: at },
        { user: 'erin', uid: 61200, allocatedAt: at },
      ]);
      assert.deepEqual(conflicts, [
        { user: 'frank', localUid: 61300, poolUid: 61201, uidHolder: undefined },
        { user: 'gina', localUid: 61200, poolUid: undefined, uidHolder: 'erin' },
      ]);
      assert.equal(await second.poolAccounts.allocate('frank', NONE_USED), 61201, "the pool's stands");
      // Gina gets a uid of her own at her first job, not erin's.
      assert.notEqual(await second.poolAccounts.allocate('gina', NONE_USED), 61200);
    } finally {
      await first.close();
      await second.close();
      await database2.drop();
    }
  });
});
