import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

/**
 * A write to the SQLite job database that waits out the busy timeout (5 s) because another process
 * holds its write lock is a store that cannot be used now, as PostgreSQL's lock timeout is: 503
 * `STORE_UNAVAILABLE` saying so, not 500 `INTERNAL`.
 */
describe('the SQLite job database locked by another process', () => {
  let h: Harness;
  let a: AppHarness;
  let token: string;
  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    token = await a.issue('alice', 'user');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  it('answers a submit 503 STORE_UNAVAILABLE naming the lock, and takes it once the lock is let go', async () => {
    const path = join(h.dataDir, 'jobworker.db');
    // The token's first use is written now (then at most once a minute), not while the lock is held:
    // each write waits out the busy timeout, with the event loop stopped (node:sqlite is synchronous).
    const warm = await a.app.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(warm.statusCode, 200);
    await a.accounts.flush();
    // As `sqlite3 jobworker.db` with `begin immediate;` typed and left open.
    const other = new DatabaseSync(path);
    other.exec('begin immediate');
    const submit = () =>
      a.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { authorization: `Bearer ${token}` },
        payload: { command: 'true' },
      });
    try {
      const refused = await submit();
      assert.equal(refused.statusCode, 503, refused.body);
      const { error } = refused.json() as { error: { code: string; message: string } };
      assert.equal(error.code, 'STORE_UNAVAILABLE');
      assert.match(
        error.message,
        /The job database .*jobworker\.db is busy: database is locked \(SQLITE_BUSY\)/,
      );
      assert.match(error.message, /another process holds it locked .*try again/);
    } finally {
      other.exec('rollback');
      other.close();
    }
    assert.equal((await submit()).statusCode, 201);
  });
});
