import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ValidationError } from '../../src/core/errors.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';

/** A log that the test can wait on: each line, and a promise of the next one matching a pattern. */
function logLines() {
  const lines: string[] = [];
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  return {
    lines,
    log: (level: 'warn' | 'error', message: string) => {
      const line = `${level}: ${message}`;
      lines.push(line);
      for (const w of [...waiting]) {
        if (!w.pattern.test(line)) continue;
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(line);
      }
    },
    next: (pattern: RegExp, from = 0) =>
      new Promise<string>((resolve) => {
        const seen = lines.slice(from).find((l) => pattern.test(l));
        if (seen !== undefined) resolve(seen);
        else waiting.push({ pattern, resolve });
      }),
  };
}

const QUICK = { retryMs: 20 } as const;

describe('a node holds its id in PostgreSQL (PgNodeLock)', () => {
  let database: TestDatabase;
  let a: PgJobStore;
  let b: PgJobStore;
  before(async () => {
    database = await createTestDatabase('node-lock');
    a = await PgJobStore.open(database.url);
    b = await PgJobStore.open(database.url);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  it('refuses a second server with the same id, naming where the first connects from; other ids are free', async () => {
    const first = await a.holdNodeId('node-one', { ...QUICK, log: logLines().log });
    try {
      await assert.rejects(
        b.holdNodeId('node-one', { ...QUICK, waitMs: 0, log: logLines().log }),
        (err: ValidationError) =>
          err instanceof ValidationError &&
          err.field === 'nodeId' &&
          /^Node id "node-one" is in use by another running server \(connected from .+ since \d{4}-/.test(
            err.message,
          ) &&
          err.message.includes('give each node its own --node-id'),
      );
      const other = await b.holdNodeId('node-two', { ...QUICK, waitMs: 0, log: logLines().log });
      await other();
    } finally {
      await first();
    }
    // Let go: the id is free for the next server at once.
    const next = await b.holdNodeId('node-one', { ...QUICK, waitMs: 0, log: logLines().log });
    await next();
  });

  it('waits at its start for a holder that lets go (a restart on the same host), and says it waits', async () => {
    const first = await a.holdNodeId('restarting', { ...QUICK, log: logLines().log });
    const waits = logLines();
    const second = b.holdNodeId('restarting', { ...QUICK, waitMs: 60_000, log: waits.log });
    assert.match(
      await waits.next(/waiting up to 60 s/),
      /^warn: node id "restarting" is held by another session/,
    );
    await first();
    const release = await second;
    await release();
  });

  it('a store closed while it waits for its id ends the wait, and leaves no hold behind', async () => {
    const first = await a.holdNodeId('closing', { ...QUICK, log: logLines().log });
    const c = await PgJobStore.open(database.url);
    const waits = logLines();
    const waiting = c.holdNodeId('closing', { ...QUICK, waitMs: 60_000, log: waits.log });
    await waits.next(/waiting up to 60 s/);
    await c.close();
    await assert.rejects(waiting, /closed while node id "closing" was being taken/);
    // Let go by the first: were the closed store's wait still trying, it could take it now, for good.
    await first();
    const next = await b.holdNodeId('closing', { ...QUICK, waitMs: 0, log: logLines().log });
    await next();
  });

  it('takes its id again when its connection drops, and logs an error while another server holds it', async () => {
    const logs = logLines();
    // Slow to take it again, so that the other server surely takes it first.
    const held = await a.holdNodeId('dropped', { retryMs: 1000, log: logs.log });
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      // Its session ends (a failover, a network cut, an administrator): the hold goes with it.
      await admin.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'jobworker node dropped'",
      );
      await logs.next(/^error: the hold on node id "dropped" was lost with its connection/);
      const other = await b.holdNodeId('dropped', { ...QUICK, waitMs: 10_000, log: logLines().log });
      assert.match(
        await logs.next(/^error: node id "dropped" was taken by another server/),
        /two servers now act as one node; stop one of them$/,
      );
      await other();
      await logs.next(/^warn: the hold on node id "dropped" is taken again/);
      await assert.rejects(b.holdNodeId('dropped', { ...QUICK, waitMs: 0, log: logLines().log }), {
        field: 'nodeId',
      });
      await held();
      // Let go on purpose: not taken again.
      const free = await b.holdNodeId('dropped', { ...QUICK, waitMs: 0, log: logLines().log });
      await free();
    } finally {
      await admin.end();
    }
  });
});
