import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import type { ProcessIdentity } from '../../src/core/job.ts';
import { jobToRow } from '../../src/store/job-row.ts';
import { migratePostgres, POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrate-postgres.ts';
import { openPostgres } from '../../src/store/postgres/open-postgres.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { PgWebhookStore } from '../../src/store/postgres/pg-webhook-store.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { makeJob } from './make-job.ts';
import {
  countedOverTable,
  delivery,
  describeWebhookStoreContract,
  earlyJobRow,
  insertJob,
  keptCounts,
  setStatus,
} from './webhook-store-contract.ts';

describeWebhookStoreContract('PgWebhookStore', async () => {
  const database = await createTestDatabase('webhooks');
  const db = openPostgres(database.url);
  await migratePostgres(db);
  // The suite's plain SQL goes through a pool of its own, as another node's would.
  const other = openPostgres(database.url);
  return {
    store: new PgWebhookStore(db, database.url),
    db: other,
    async cleanup() {
      await other.destroy();
      await db.destroy();
      await database.drop();
    },
  };
});

describe('PgWebhookStore job status counts (migration 0003-webhooks)', () => {
  it('are seeded from the jobs already stored when the migration runs', async () => {
    const database = await createTestDatabase('counts_seed');
    const db = openPostgres(database.url);
    try {
      const before = Object.fromEntries(
        Object.entries(POSTGRES_MIGRATIONS).filter(([name]) => name < '0003'),
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
      assert.deepEqual(
        await migratePostgres(db),
        Object.keys(POSTGRES_MIGRATIONS).filter((name) => name >= '0003'),
      );
      const store = new PgWebhookStore(db, database.url);
      assert.deepEqual(await keptCounts(store), await countedOverTable(db));
      assert.deepEqual(await keptCounts(store), { queued: 1, succeeded: 2, failed: 1, cancelled: 1 });
    } finally {
      await db.destroy();
      await database.drop();
    }
  });
});

describe('PgWebhookStore across nodes', () => {
  let database: TestDatabase;
  // Two pools on one database: what two nodes of a cluster are to each other.
  let a: Kysely<StoreSchema>;
  let b: Kysely<StoreSchema>;
  before(async () => {
    database = await createTestDatabase('webhooks_nodes');
    a = openPostgres(database.url);
    b = openPostgres(database.url);
    await migratePostgres(a);
  });
  after(async () => {
    await a.destroy();
    await b.destroy();
    await database.drop();
  });

  it('counts a job change of one node while another node has one uncommitted', {
    timeout: 20_000,
  }, async () => {
    const held = makeJob();
    const other = makeJob();
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inserted = () => {};
    const insertedHeld = new Promise<void>((resolve) => {
      inserted = resolve;
    });
    const open = a.transaction().execute(async (trx) => {
      await insertJob(trx, held);
      await setStatus(trx, held.id, 'running');
      inserted();
      await released;
    });
    await insertedHeld;
    // With a single counter row per status, these would wait for the open transaction (and
    // so would this test: it times out rather than hangs).
    await insertJob(b, other);
    await setStatus(b, other.id, 'running');
    await setStatus(b, other.id, 'succeeded');
    const whileOpen = await keptCounts(new PgWebhookStore(b, database.url));
    assert.deepEqual(whileOpen, { succeeded: 1 }, 'the uncommitted change is not counted yet');
    release();
    await open;
    assert.deepEqual(await keptCounts(new PgWebhookStore(b, database.url)), { running: 1, succeeded: 1 });
    assert.deepEqual(await keptCounts(new PgWebhookStore(a, database.url)), await countedOverTable(a));
  });

  it('stay exact under many concurrent transactions from two nodes, counted and folded meanwhile', async () => {
    const jobs = Array.from({ length: 40 }, () => makeJob({ status: 'running' }));
    await a.insertInto('jobs').values(jobs.map(jobToRow)).execute();
    const nodes = [a, b];
    const work = jobs.map((job, i) =>
      nodes[i % 2]!.transaction().execute(async (trx) => {
        // Opposite directions through the same statuses, several jobs per transaction.
        const mine = [job, jobs[(i + 1) % jobs.length]!, jobs[(i + 7) % jobs.length]!];
        for (const j of i % 2 === 0 ? mine : mine.reverse()) {
          await trx
            .updateTable('jobs')
            .set({ status: 'paused' })
            .where('id', '=', j.id)
            .where('status', '=', 'running')
            .execute();
          await trx
            .updateTable('jobs')
            .set({ status: 'running' })
            .where('id', '=', j.id)
            .where('status', '=', 'paused')
            .execute();
        }
        await setStatus(trx, job.id, i % 3 === 0 ? 'failed' : 'succeeded');
      }),
    );
    const reads = Array.from({ length: 10 }, (_, i) =>
      new PgWebhookStore(nodes[i % 2]!, database.url).countJobsByStatus(),
    );
    const outcomes = await Promise.allSettled([...work, ...reads]);
    assert.deepEqual(
      outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason)),
      [],
      'no transaction failed (no deadlock, no lost count)',
    );
    const store = new PgWebhookStore(b, database.url);
    assert.deepEqual(await keptCounts(store), await countedOverTable(b));
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from job_status_counts`.execute(b);
    assert.ok(rows[0]!.n <= 9 + 2, `folded to a row per status, got ${rows[0]!.n} rows`);
  });

  it('fans an event out once when two nodes fan it out at once', async () => {
    await new PgWebhookStore(a, database.url).appendOutbox('job:progress', makeJob(), new Date());
    const [event] = await new PgWebhookStore(a, database.url).readOutbox(1);
    await Promise.all([
      new PgWebhookStore(a, database.url).fanOut(event!.seq, [
        delivery('01900000-0000-7000-8000-0000000001a1'),
      ]),
      new PgWebhookStore(b, database.url).fanOut(event!.seq, [
        delivery('01900000-0000-7000-8000-0000000001b1'),
      ]),
    ]);
    const { deliveries } = await new PgWebhookStore(b, database.url).listDeliveries({ limit: 10 });
    assert.equal(deliveries.length, 1);
  });
});

describe('PgWebhookStore beside PgJobStore', () => {
  it("records a notify job's events from the job store's own transitions", async () => {
    const database = await createTestDatabase('webhooks_jobs');
    const jobs = await PgJobStore.open(database.url);
    const db = openPostgres(database.url);
    try {
      const webhooks = new PgWebhookStore(db, database.url);
      const now = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
      const process: ProcessIdentity = { pid: 1234, startTicks: 1, bootId: 'b', cgroups: [] };
      const job = makeJob({ spec: { notify: { url: 'https://example.com/h', events: ['job:finished'] } } });
      await jobs.admitJob(job, now);
      await jobs.markStarted(job.id, process, now);
      await jobs.markFinished(job.id, {
        status: 'failed',
        exit: { exitCode: 1, signal: null, reason: 'exited with 1' },
        finishedAt: now,
        outputBytes: { stdout: 3, stderr: 0 },
      });
      const events = await webhooks.readOutbox(10);
      assert.deepEqual(
        events.map((e) => [e.event, e.job.status]),
        [
          ['job:queued', 'queued'],
          ['job:started', 'running'],
          ['job:finished', 'failed'],
        ],
      );
      assert.deepEqual(events[2]?.job, await jobs.getJob(job.id), 'the snapshot is the job as stored');
      assert.deepEqual(await keptCounts(webhooks), { failed: 1 });
    } finally {
      await db.destroy();
      await jobs.close();
      await database.drop();
    }
  });
});
