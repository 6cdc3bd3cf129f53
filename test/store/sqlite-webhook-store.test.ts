import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import type { ProcessIdentity } from '../../src/core/job.ts';
import type { JobFinish } from '../../src/store/job-store.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrate-sqlite.ts';
import { openSqliteConnection } from '../../src/store/sqlite/open-sqlite-connection.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { makeJob } from './make-job.ts';
import { describeWebhookStoreContract, earlyJobRow } from './webhook-store-contract.ts';

const NOW = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
const PROCESS: ProcessIdentity = { pid: 1234, startTicks: 1, bootId: 'b', cgroups: [] };
const finish = (status: 'succeeded' | 'failed'): JobFinish => ({
  status,
  exit: { exitCode: status === 'succeeded' ? 0 : 1, signal: null, reason: status },
  finishedAt: NOW,
  outputBytes: { stdout: 0, stderr: 0 },
});

describeWebhookStoreContract('SqliteWebhookStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-webhook-contract-'));
  const store = await SqliteJobStore.open(join(dir, 'jobs.db'));
  const db = openSqliteConnection(join(dir, 'jobs.db'));
  return {
    store: store.webhooks,
    db,
    async cleanup() {
      await db.destroy();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

async function withStore(test: (store: SqliteJobStore, path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-webhook-store-'));
  const store = await SqliteJobStore.open(join(dir, 'jobs.db'));
  try {
    await test(store, join(dir, 'jobs.db'));
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The truth the kept counts must equal: a count over the table. */
async function counted(path: string): Promise<Record<string, number>> {
  const db: Kysely<StoreSchema> = openSqliteConnection(path);
  try {
    const { rows } = await sql<{
      status: string;
      n: number;
    }>`select status, count(*) as n from jobs group by status`.execute(db);
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  } finally {
    await db.destroy();
  }
}

/** The kept counts without the statuses at zero. */
async function kept(store: SqliteJobStore): Promise<Record<string, number>> {
  return Object.fromEntries(
    Object.entries(await store.webhooks.countJobsByStatus()).filter(([, n]) => n !== 0),
  );
}

describe('SQLite job status counts (migration 0008)', () => {
  it('are seeded from the jobs already stored when the migration runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-counts-'));
    const path = join(dir, 'jobs.db');
    try {
      const db: Kysely<StoreSchema> = openSqliteConnection(path);
      try {
        const before = Object.fromEntries(
          Object.entries(SQLITE_MIGRATIONS).filter(([name]) => name < '0008'),
        );
        const migrated = await new Migrator({
          db,
          provider: { getMigrations: async () => before },
        }).migrateToLatest();
        assert.equal(migrated.error, undefined);
        for (const status of ['queued', 'succeeded', 'succeeded', 'failed', 'cancelled'] as const) {
          await db
            .insertInto('jobs')
            .values(earlyJobRow(makeJob({ status })))
            .execute();
        }
      } finally {
        await db.destroy();
      }
      const store = await SqliteJobStore.open(path);
      try {
        assert.deepEqual(await kept(store), await counted(path));
        assert.deepEqual(await kept(store), { queued: 1, succeeded: 2, failed: 1, cancelled: 1 });
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('follow every insert, state change and delete, in the same transaction', () =>
    withStore(async (store, path) => {
      const check = async (what: string) => assert.deepEqual(await kept(store), await counted(path), what);
      const a = makeJob();
      const b = makeJob();
      const c = makeJob();
      for (const job of [a, b, c]) await store.admitJob(job, NOW);
      await check('admitted');
      await store.markStarted(a.id, PROCESS, NOW);
      await store.markStarted(b.id, PROCESS, NOW);
      await check('started');
      await store.markPaused(b.id, NOW);
      await store.markResumed(b.id);
      await store.markFinished(a.id, finish('succeeded'));
      await store.markFinished(b.id, finish('failed'));
      await store.cancelQueued(c.id, { at: NOW, by: 'u', graceMs: 0 }, 'cancelled');
      await check('finished');
      await assert.rejects(store.markFinished(a.id, finish('failed')));
      await check('a refused change counts nothing');
      await store.deleteJob(a.id);
      await check('deleted');
      await store.deleteFinished({ before: { finishedAt: new Date(NOW.getTime() + 1), id: '' }, limit: 10 });
      await check('retention');
      assert.deepEqual(await kept(store), {});
    }));
});

describe('SQLite webhook outbox (migration 0008)', () => {
  it('records nothing for jobs without notify while no server-wide webhook exists', () =>
    withStore(async (store) => {
      const job = makeJob();
      await store.admitJob(job, NOW);
      await store.markStarted(job.id, PROCESS, NOW);
      await store.markFinished(job.id, finish('succeeded'));
      assert.deepEqual(await store.webhooks.readOutbox(10), []);
    }));

  it("records a notify job's queued, started and finished with the job as it was, once each", () =>
    withStore(async (store) => {
      const job = makeJob({ spec: { notify: { url: 'https://example.com/h', events: ['job:finished'] } } });
      await store.admitJob(job, NOW);
      await store.markStarted(job.id, PROCESS, NOW);
      await store.markPaused(job.id, NOW);
      await store.markResumed(job.id); // paused → running is not a start
      await store.markFinished(job.id, finish('failed'));
      await assert.rejects(store.markFinished(job.id, finish('succeeded')));
      const events = await store.webhooks.readOutbox(10);
      assert.deepEqual(
        events.map((e) => [e.event, e.job.status, e.job.id]),
        [
          ['job:queued', 'queued', job.id],
          ['job:started', 'running', job.id],
          ['job:finished', 'failed', job.id],
        ],
      );
      assert.deepEqual(events[2]!.job, await store.getJob(job.id), 'the snapshot is the job as stored');
    }));

  it('records every job while a server-wide webhook exists; a job cancelled at admission is queued and finished', () =>
    withStore(async (store) => {
      await store.webhooks.addWebhook({
        id: '01900000-0000-7000-8000-000000000001',
        url: 'https://example.com/all',
        events: ['job:finished'],
        secret: 'x'.repeat(16),
        createdAt: NOW,
        createdBy: 'admin',
      });
      const dep = makeJob();
      await store.admitJob(dep, NOW);
      await store.cancelQueued(dep.id, { at: NOW, by: 'u', graceMs: 0 }, 'cancelled');
      const waiting = makeJob({ spec: { after: [dep.id] } });
      await store.admitJob(waiting, NOW);
      const events = await store.webhooks.readOutbox(10);
      assert.deepEqual(
        events.map((e) => [e.event, e.job.id, e.job.status]),
        [
          ['job:queued', dep.id, 'queued'],
          ['job:finished', dep.id, 'cancelled'],
          ['job:queued', waiting.id, 'cancelled'],
          ['job:finished', waiting.id, 'cancelled'],
        ],
      );
      await store.webhooks.fanOut(events[0]!.seq, []);
      assert.equal((await store.webhooks.readOutbox(10)).length, 3, 'fanned out rows go');
    }));
});
