import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { NodeSqliteDatabase } from '../../src/store/sqlite/node-sqlite-database.ts';

function open(statementCacheSize?: number): NodeSqliteDatabase {
  const db = new NodeSqliteDatabase(new DatabaseSync(':memory:'), { statementCacheSize });
  db.connection.exec('create table t (x integer primary key, y text)');
  return db;
}

describe('NodeSqliteDatabase', () => {
  it('prepares each SQL text once', () => {
    const db = open();
    const first = db.prepare('select y from t where x = ?');
    assert.equal(db.prepare('select y from t where x = ?'), first);
    assert.equal(db.cachedStatements, 1);
    db.close();
  });

  it('keeps at most the configured number of statements, dropping the least recently used', () => {
    const db = open(2);
    const a = db.prepare('select 1');
    const b = db.prepare('select 2');
    assert.equal(db.prepare('select 1'), a); // now b is the least recently used
    db.prepare('select 3');
    assert.equal(db.cachedStatements, 2);
    assert.equal(db.prepare('select 1'), a);
    assert.notEqual(db.prepare('select 2'), b);
    db.close();
  });

  it('speaks the better-sqlite3 statement shape Kysely drives', () => {
    const db = open();
    const insert = db.prepare('insert into t (y) values (?)');
    assert.equal(insert.reader, false);
    assert.deepStrictEqual(insert.run(['a']), { changes: 1, lastInsertRowid: 1 });
    const returning = db.prepare('insert into t (y) values (?) returning x');
    assert.equal(returning.reader, true);
    assert.deepStrictEqual(
      returning.all(['b']).map((r) => ({ ...(r as object) })),
      [{ x: 2 }],
    );
    const select = db.prepare('select y from t where x >= ? order by x');
    assert.equal(select.reader, true);
    assert.deepStrictEqual(
      [...select.iterate([1])].map((r) => (r as { y: string }).y),
      ['a', 'b'],
    );
    db.close();
    db.close(); // closing twice is harmless
  });
});
