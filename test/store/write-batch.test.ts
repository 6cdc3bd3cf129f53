import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CompiledQuery, type Kysely } from 'kysely';
import { openSqliteWithConnection } from '../../src/store/sqlite/open-sqlite-connection.ts';
import { type RunNow, WriteBatch } from '../../src/store/sqlite/write-batch.ts';

// Tables of this test only: WriteBatch works on any schema.
interface TestSchema {
  t: { x: number };
}

describe('WriteBatch with statements run at once on the connection', () => {
  let dir: string;
  let db: Kysely<TestSchema>;
  let ran: string[];
  let runNow: RunNow;
  let opened: ReturnType<typeof openSqliteWithConnection>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jobworker-batch-'));
    opened = openSqliteWithConnection(join(dir, 'batch.db'));
    db = opened.db as unknown as Kysely<TestSchema>;
    await db.executeQuery(CompiledQuery.raw('create table t (x integer not null unique)'));
    ran = [];
    runNow = (sql, parameters) => {
      // Only ever inside the batch's transaction: a savepoint outside one would begin its own.
      assert.ok(opened.connection.inTransaction, `${sql} ran outside a transaction`);
      ran.push(sql);
      return opened.connection.runNow(sql, parameters);
    };
  });

  afterEach(async () => {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const INSERT = 'insert into t (x) values (?) returning x';
  const insert = (x: number) => CompiledQuery.raw(INSERT, [x]) as CompiledQuery<{ x: number }>;
  /** What a unit of a batch runs at once: its savepoint around what it ran that way. */
  const unit = (...inside: string[]) => ['savepoint unit', ...inside, 'release unit'];
  // node:sqlite's rows have no prototype.
  const plain = (rows: readonly unknown[]) => rows.map((row) => ({ ...(row as object) }));
  const rows = async () => (await db.selectFrom('t').select('x').orderBy('x').execute()).map((r) => r.x);

  it('runs a turn in one transaction, each unit in its savepoint, without Kysely; a failing unit is undone alone', async () => {
    const batch = new WriteBatch(db, runNow);
    const outcomes = await Promise.allSettled([
      batch.execute(insert(1)),
      batch.execute(insert(1)), // breaks the unique constraint
      batch.execute(insert(2)),
    ]);
    assert.deepEqual(
      outcomes.map((o) => (o.status === 'fulfilled' ? plain(o.value.rows) : String(o.reason))),
      [[{ x: 1 }], 'Error: UNIQUE constraint failed: t.x', [{ x: 2 }]],
    );
    assert.deepEqual(await rows(), [1, 2]);
    assert.deepEqual(ran, [...unit(INSERT), ...unit(INSERT, 'rollback to unit'), ...unit(INSERT)]);
  });

  it('mixes units of Kysely (`run`) with statements run at once, in order, in one transaction', async () => {
    const batch = new WriteBatch(db, runNow);
    const [a, b] = await Promise.all([
      batch.execute(insert(1)),
      batch.run(async (trx) => {
        // The unit before it is visible here: same transaction, same connection.
        const seen = await trx.selectFrom('t').select('x').execute();
        await trx.insertInto('t').values({ x: 3 }).execute();
        return seen.map((r) => r.x);
      }),
    ]);
    assert.deepEqual(plain(a.rows), [{ x: 1 }]);
    assert.deepEqual(b, [1]);
    assert.deepEqual(await rows(), [1, 3]);
    // One batch (savepoints around both units), not each unit alone; Kysely's unit ran through it.
    assert.deepEqual(ran, [...unit(INSERT), ...unit()]);
  });

  it('undoes alone a unit of Kysely that wrote and then threw; a query from outside waits for the commit', async () => {
    const batch = new WriteBatch(db, runNow);
    let outside: Promise<number[]> | undefined;
    const outcomes = await Promise.allSettled([
      batch.execute(insert(1)),
      batch.run(async (trx) => {
        await trx.insertInto('t').values({ x: 2 }).execute();
        // Not in the batch: it must wait for the connection until the batch has committed.
        outside = rows();
        throw new Error('after writing');
      }),
      batch.execute(insert(3)),
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual(
      await outside,
      [1, 3],
      'the outside read saw the committed batch, without the undone row',
    );
    assert.deepEqual(ran, [...unit(INSERT), ...unit('rollback to unit'), ...unit(INSERT)]);
    assert.deepEqual(await rows(), [1, 3]);
  });

  it('runs a lone unit in a transaction of its own, and gives its error to its caller', async () => {
    const batch = new WriteBatch(db, runNow);
    assert.deepEqual(plain((await batch.execute(insert(5))).rows), [{ x: 5 }]);
    await assert.rejects(batch.execute(insert(5)), /UNIQUE constraint failed: t\.x/);
    assert.deepEqual(ran, [INSERT, INSERT]);
    assert.deepEqual(await rows(), [5]);
  });

  it('refuses to run a statement at once outside a transaction', () => {
    const { connection } = opened;
    assert.throws(
      () => connection.runNow('savepoint unit', []),
      /runNow outside a transaction: savepoint unit/,
    );
  });

  it('without a runner, runs the same batch through Kysely with the same outcomes', async () => {
    const batch = new WriteBatch(db);
    const outcomes = await Promise.allSettled([batch.execute(insert(1)), batch.execute(insert(1))]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected'],
    );
    assert.deepEqual(await rows(), [1]);
  });
});
