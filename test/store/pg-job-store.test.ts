import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { InsufficientStorageError } from '../../src/core/errors.ts';
import type { Job } from '../../src/core/job.ts';
import { jobToRow } from '../../src/store/job-row.ts';
import type { JobListQuery } from '../../src/store/job-store.ts';
import { checkListQuery } from '../../src/store/list-query.ts';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrate-postgres.ts';
import * as dueNotify from '../../src/store/postgres/migrations/0006-due-notify.ts';
import { openPostgres, sessionName, sessionTimeouts } from '../../src/store/postgres/open-postgres.ts';
import {
  claimStatement,
  countActiveQuery,
  nextRunAtQuery,
  queueStatesStatement,
  readyQueuesStatement,
} from '../../src/store/postgres/pg-dispatch-queries.ts';
import {
  PgJobStore,
  SKIPPED_QUEUE_RETRY_MS,
  type StoreWakeUp,
} from '../../src/store/postgres/pg-job-store.ts';
import { pgListJobsQuery } from '../../src/store/postgres/pg-list-jobs-query.ts';
import { PostgresUnavailableError, pgStoreError } from '../../src/store/postgres/pg-storage-error.ts';
import { WATCH_RETRY_MS } from '../../src/store/postgres/pg-watch.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { describeJobStoreContract } from './job-store-contract.ts';
import { makeJob } from './make-job.ts';

/** Every table of 0001-jobs, emptied between the contract's tests (a migration per test costs more). */
const TABLES = 'jobs, job_labels, queues, job_deps, job_dirs_to_remove, job_results';

let contractDb: TestDatabase;

async function truncate(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`truncate ${TABLES}`);
    await client.query(`insert into queues (name, paused) values ('default', 0)`);
  } finally {
    await client.end();
  }
}

before(async () => {
  contractDb = await createTestDatabase('pg_job_store');
});
after(async () => {
  await contractDb?.drop();
});

describeJobStoreContract(
  'PgJobStore',
  async () => {
    const store = await PgJobStore.open(contractDb.url, { max: 4 });
    await truncate(contractDb.url);
    return { store, cleanup: () => store.close() };
  },
  { shared: true },
);

/** Polls `check` until it holds, or fails after `timeoutMs`. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('PgJobStore on PostgreSQL', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('pg_store_specific');
  });
  after(async () => {
    await db?.drop();
  });

  it('three stores opening a fresh database at once migrate it once, and all open', async () => {
    const fresh = await createTestDatabase('pg_migrate_race');
    try {
      const stores = await Promise.all([0, 1, 2].map(() => PgJobStore.open(fresh.url, { max: 2 })));
      const client = new pg.Client({ connectionString: fresh.url });
      await client.connect();
      try {
        const { rows } = await client.query('select name from kysely_migration order by name');
        assert.deepEqual(
          rows.map((r) => r.name),
          Object.keys(POSTGRES_MIGRATIONS),
        );
      } finally {
        await client.end();
      }
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await fresh.drop();
    }
  });

  it('migration 0010 forgets the queues left without settings or jobs, and keeps the others', async () => {
    const fresh = await createTestDatabase('pg_forget_queues');
    const kysely = openPostgres(fresh.url, { max: 1 });
    try {
      const before = Object.fromEntries(
        Object.entries(POSTGRES_MIGRATIONS).filter(([name]) => name < '0010'),
      );
      const migrated = await new Migrator({
        db: kysely,
        provider: { getMigrations: async () => before },
      }).migrateToLatest();
      assert.equal(migrated.error, undefined);
      for (const name of ['used-once', 'with-job', 'limited']) {
        await kysely.insertInto('queues').values({ name, paused: 0 }).execute();
      }
      await kysely.updateTable('queues').set({ max_waiting: 5 }).where('name', '=', 'limited').execute();
      await kysely
        .insertInto('jobs')
        .values(jobToRow(makeJob({ status: 'succeeded', spec: { queue: 'with-job' } })))
        .execute();
      const store = await PgJobStore.open(fresh.url, { max: 1 });
      try {
        assert.deepEqual(
          (await store.listQueues()).map((q) => q.name),
          ['default', 'limited', 'with-job'],
        );
      } finally {
        await store.close();
      }
    } finally {
      await kysely.destroy();
      await fresh.drop();
    }
  });

  it('two stores claiming from a queue limited to 5 never hold more than 5 slots, and claim each job once', async () => {
    const a = await PgJobStore.open(db.url, { max: 4 });
    const b = await PgJobStore.open(db.url, { max: 4 });
    try {
      await a.putQueue('limited', { concurrency: 5 });
      const ids = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const { job } = (await a.admitJob(makeJob({ spec: { queue: 'limited' } }), new Date())) as {
          job: Job;
        };
        ids.add(job.id);
      }
      const claimedBy = new Map<string, string>();
      let maxSeen = 0;
      // Each round, both stores claim (several calls each, at once); then some claimed jobs end.
      const nodes = [
        { store: a, node: 'node-a' },
        { store: b, node: 'node-b' },
      ];
      for (let round = 0; claimedBy.size < ids.size; round++) {
        assert.ok(round < 500, 'the claims do not make progress');
        const batches = await Promise.all(
          nodes.flatMap(({ store, node }) => [0, 1, 2].map(() => store.claimReady('limited', node, 4))),
        );
        const active = await a.countActive('limited');
        maxSeen = Math.max(maxSeen, active);
        assert.ok(active <= 5, `${active} jobs hold a slot of a queue limited to 5`);
        for (const job of batches.flat()) {
          assert.equal(claimedBy.get(job.id), undefined, `job ${job.id} claimed twice`);
          claimedBy.set(job.id, job.node);
          const started = await (job.node === 'node-a' ? a : b).markStarted(
            job.id,
            { pid: 1, startTicks: 1, bootId: 'b', cgroups: [] },
            new Date(),
          );
          assert.equal(started.status, 'running');
        }
        assert.ok(
          (await a.countActive('limited')) <= 5,
          'starting a claimed job keeps the count within the limit',
        );
        // End the running jobs, half from each store.
        const running = [...(await a.listRunning('node-a')), ...(await b.listRunning('node-b'))];
        for (const [i, job] of running.entries()) {
          await (i % 2 === 0 ? a : b).markFinished(job.id, {
            status: 'succeeded',
            exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
            finishedAt: new Date(),
            outputBytes: { stdout: 0, stderr: 0 },
          });
        }
      }
      assert.equal(maxSeen, 5, 'the limit was reached');
      assert.deepEqual(new Set(claimedBy.keys()), ids);
      assert.ok(new Set(claimedBy.values()).size === 2, 'both stores claimed some jobs');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('admits one of many racing admissions with the same dedupe key, from two stores', async () => {
    const a = await PgJobStore.open(db.url, { max: 8 });
    const b = await PgJobStore.open(db.url, { max: 8 });
    try {
      for (let round = 0; round < 5; round++) {
        const key = `nightly-${round}`;
        const admissions = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            (i % 2 === 0 ? a : b).admitJob(makeJob({ owner: 'alice', spec: { dedupeKey: key } }), new Date()),
          ),
        );
        const admitted = admissions.filter((x) => x.admitted);
        assert.equal(admitted.length, 1, `round ${round}: ${admitted.length} admitted`);
        const winner = (admitted[0] as { job: Job }).job.id;
        for (const x of admissions) {
          if (!x.admitted) assert.equal(x.existing.id, winner);
        }
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('an admission that loses a dedupe race in flight (waiting on the unique index) returns the winner', async () => {
    const store = await PgJobStore.open(db.url, { max: 2 });
    // Two connections: one holds the winner's transaction open, the other watches the locks.
    const other = openPostgres(db.url, { max: 2 });
    let commit = () => {};
    try {
      const winner = makeJob({ owner: 'alice', spec: { dedupeKey: 'in-flight' } });
      const committed = new Promise<void>((resolve) => {
        commit = resolve;
      });
      let inserted!: () => void;
      const insertedYet = new Promise<void>((resolve) => {
        inserted = resolve;
      });
      const holder = other.transaction().execute(async (trx) => {
        await trx.insertInto('jobs').values(jobToRow(winner)).execute();
        inserted();
        await committed;
      });
      await insertedYet;
      // Its look finds nothing committed; its insert then waits for the holder's transaction.
      const racing = store.admitJob(
        makeJob({ owner: 'alice', spec: { dedupeKey: 'in-flight' } }),
        new Date(),
      );
      await until('the admission to wait on the lock', async () => {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(other);
        return (rows[0]?.n ?? 0) > 0;
      });
      commit();
      await holder;
      const admission = await racing;
      assert.ok(!admission.admitted, 'the second admission is refused');
      assert.equal(admission.existing.id, winner.id);
    } finally {
      commit();
      await other.destroy();
      await store.close();
    }
  });

  it('a deletion does not forget a queue whose row an admission holds; it waits, and forgets it only if no job came', async () => {
    const store = await PgJobStore.open(db.url, { max: 2 });
    // Another session, as an admission on another node: it holds the queue's row as `holdQueue` does.
    const other = openPostgres(db.url, { max: 2 });
    const told: string[] = [];
    store.onQueuesForgotten((names) => told.push(...names));
    try {
      for (const [queue, addsJob] of [
        ['held-kept', true],
        ['held-gone', false],
      ] as const) {
        const last = makeJob({ status: 'succeeded', spec: { queue } });
        await store.insertJob(last);
        let end!: (commit: boolean) => void;
        const ended = new Promise<boolean>((resolve) => {
          end = resolve;
        });
        let held!: () => void;
        const heldYet = new Promise<void>((resolve) => {
          held = resolve;
        });
        const admission = other
          .transaction()
          .execute(async (trx) => {
            await sql`select name from queues where name = ${queue} for key share`.execute(trx);
            if (addsJob)
              await trx
                .insertInto('jobs')
                .values(jobToRow(makeJob({ spec: { queue } })))
                .execute();
            held();
            if (!(await ended)) throw new Error('rolled back');
          })
          .catch(() => undefined);
        await heldYet;
        const deleting = store.deleteJob(last.id);
        try {
          await until(`the deletion to wait for the row of ${queue}`, async () => {
            const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'`.execute(other);
            return (rows[0]?.n ?? 0) > 0;
          });
        } finally {
          end(addsJob);
          await admission;
        }
        assert.equal((await deleting).id, last.id);
        const names = (await store.listQueues()).map((q) => q.name);
        assert.equal(names.includes(queue), addsJob, `${queue} is listed: ${names.join(', ')}`);
      }
      assert.deepEqual(told, ['held-gone']);
      assert.equal((await store.getQueue('held-kept')).waiting, 1);
    } finally {
      await other.destroy();
      await store.close();
    }
  });

  it('lists and claims a job waiting in a queue whose row is gone, and makes the row again (a rolling upgrade)', async () => {
    // A node of the version before queues were forgotten admits without locking an existing row:
    // a newer node's deletion of the queue's last job could forget the row under its job.
    const store = await PgJobStore.open(db.url, { max: 2 });
    const other = openPostgres(db.url, { max: 1 });
    try {
      const admission = await store.admitJob(makeJob({ spec: { queue: 'rowless' } }), new Date());
      assert.ok(admission.admitted);
      await other.deleteFrom('queues').where('name', '=', 'rowless').execute();
      const ready = await store.listReadyQueues();
      assert.deepEqual(
        ready
          .filter((q) => q.name === 'rowless')
          .map((q) => ({ paused: q.paused, concurrency: q.concurrency })),
        [{ paused: false, concurrency: null }],
      );
      assert.deepEqual(
        (await store.claimReady('rowless', 'node-a', 5)).map((j) => j.id),
        [admission.job.id],
      );
      assert.ok(
        (await store.listQueues()).some((q) => q.name === 'rowless'),
        'its row made again',
      );
      assert.deepEqual(await store.claimReady('no-such-queue', 'node-a', 5), [], 'no row made for no job');
      assert.equal(
        (await store.listQueues()).some((q) => q.name === 'no-such-queue'),
        false,
      );
    } finally {
      await other.destroy();
      await store.close();
    }
  });

  it('an admission to a queue a deletion is forgetting waits for it, then makes the queue again', async () => {
    const store = await PgJobStore.open(db.url, { max: 2 });
    const other = openPostgres(db.url, { max: 2 });
    try {
      const last = makeJob({ status: 'succeeded', spec: { queue: 'forgetting' } });
      await store.insertJob(last);
      let forget!: () => void;
      const forgetNow = new Promise<void>((resolve) => {
        forget = resolve;
      });
      let locked!: () => void;
      const lockedYet = new Promise<void>((resolve) => {
        locked = resolve;
      });
      // As a deletion of its last job on another node: the row locked, then deleted with the job.
      const deletion = other.transaction().execute(async (trx) => {
        await sql`select name from queues where name = 'forgetting' for update`.execute(trx);
        locked();
        await forgetNow;
        await trx.deleteFrom('jobs').where('id', '=', last.id).execute();
        await trx.deleteFrom('queues').where('name', '=', 'forgetting').execute();
      });
      await lockedYet;
      const admitting = store.admitJob(makeJob({ spec: { queue: 'forgetting' } }), new Date());
      try {
        await until('the admission to wait for the row', async () => {
          const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'`.execute(other);
          return (rows[0]?.n ?? 0) > 0;
        });
      } finally {
        forget();
        await deletion;
      }
      const admission = await admitting;
      assert.ok(admission.admitted);
      assert.ok(
        (await store.listQueues()).some((q) => q.name === 'forgetting'),
        'the queue was made again',
      );
      assert.deepEqual(
        (await store.claimReady('forgetting', 'node-a', 5)).map((j) => j.id),
        [admission.job.id],
      );
    } finally {
      await other.destroy();
      await store.close();
    }
  });

  it('an admission on one store wakes the listener of another; an end is told too', async () => {
    const a = await PgJobStore.open(db.url, { max: 2 });
    const b = await PgJobStore.open(db.url, { max: 2 });
    const events: StoreWakeUp[] = [];
    const stop = await a.watch((event) => events.push(event));
    try {
      const { job } = (await b.admitJob(makeJob({ spec: { queue: 'wake' } }), new Date())) as { job: Job };
      await until('a work wake-up for queue wake', () =>
        events.some((e) => e.channel === 'work' && e.payload === 'wake'),
      );
      const [claimed] = await b.claimReady('wake', 'node-b', 1);
      assert.equal(claimed?.id, job.id);
      events.length = 0;
      await b.releaseClaim(job.id, 'node-b');
      await until('a work wake-up after a released claim', () =>
        events.some((e) => e.channel === 'work' && e.payload === 'wake'),
      );
      await b.cancelQueued(job.id, { at: new Date(), by: 'bob', graceMs: 0 }, 'cancelled by bob');
      await until('an ended wake-up', () =>
        events.some((e) => e.channel === 'ended' && e.payload === job.id),
      );
      // A running job that ends gives its slot back: work for its queue, and its end.
      const { job: second } = (await b.admitJob(makeJob({ spec: { queue: 'wake' } }), new Date())) as {
        job: Job;
      };
      await b.claimReady('wake', 'node-b', 1);
      await b.markStarted(second.id, { pid: 1, startTicks: 1, bootId: 'b', cgroups: [] }, new Date());
      events.length = 0;
      await b.markFinished(second.id, {
        status: 'failed',
        exit: { exitCode: 1, signal: null, reason: 'exited with code 1' },
        finishedAt: new Date(),
        outputBytes: { stdout: 0, stderr: 0 },
      });
      await until('work and ended wake-ups for the end of a running job', () =>
        ['work:wake', `ended:${second.id}`].every((want) =>
          events.some((e) => `${e.channel}:${e.payload}` === want),
        ),
      );
    } finally {
      await stop();
      await a.close();
      await b.close();
    }
  });

  it('tells each job that comes to wait for a time, once: a delayed admission and a retry, not a ready job (migration 0006, down and up again)', async () => {
    const a = await PgJobStore.open(db.url, { max: 2 });
    const b = await PgJobStore.open(db.url, { max: 2 });
    const kysely = openPostgres(db.url, { max: 1 }) as unknown as Kysely<unknown>;
    const events: StoreWakeUp[] = [];
    const stop = await a.watch((event) => events.push(event));
    try {
      // Down and up again: the migration's triggers come and go whole.
      await dueNotify.down(kysely);
      await dueNotify.up(kysely);
      const now = new Date();
      const later = new Date(now.getTime() + 3_600_000);
      const { job: delayed } = (await b.admitJob(makeJob({ runAt: later, spec: { queue: 'due' } }), now)) as {
        job: Job;
      };
      assert.equal(delayed.hold, 'delay');
      const { job: ready } = (await b.admitJob(makeJob({ spec: { queue: 'due' } }), now)) as { job: Job };
      await b.claimReady('due', 'node-b', 1);
      await b.markStarted(ready.id, { pid: 1, startTicks: 1, bootId: 'b', cgroups: [] }, now);
      const backoff = new Date(now.getTime() + 7_000);
      const next = makeJob({
        attempt: 2,
        retryOf: ready.id,
        runAt: backoff,
        hold: 'delay',
        spec: {
          queue: 'due',
          retry: { attempts: 2, backoff: { initialMs: 7_000, factor: 1, maxMs: 7_000 } },
        },
      });
      await b.markRetried(
        ready.id,
        {
          status: 'failed',
          exit: { exitCode: 1, signal: null, reason: 'exited with code 1' },
          finishedAt: now,
          outputBytes: { stdout: 0, stderr: 0 },
        },
        next,
      );
      // A write of the waiting job that keeps it waiting tells nothing (as any update naming its
      // status or hold would); its end is told as such.
      await sql`update jobs set status = 'queued', hold = 'delay' where id = ${delayed.id}`.execute(kysely);
      await b.cancelQueued(delayed.id, { at: now, by: 'bob', graceMs: 0 }, 'cancelled by bob');
      await until('the end of the delayed job', () =>
        events.some((e) => e.channel === 'ended' && e.payload === delayed.id),
      );
      assert.deepEqual(
        events.filter((e) => e.channel === 'due').map((e) => Number(e.payload)),
        [later.getTime(), backoff.getTime()],
      );
    } finally {
      await stop();
      await kysely.destroy();
      await a.close();
      await b.close();
    }
  });

  it('reconnects a watch whose connection was cut, on its clock, and says to look at every queue', async () => {
    const clock = new ManualClock();
    const a = await PgJobStore.open(db.url, { max: 2, clock });
    const events: StoreWakeUp[] = [];
    const stop = await a.watch((event) => events.push(event));
    try {
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        const { rowCount } = await admin.query(
          `select pg_terminate_backend(pid) from pg_stat_activity
           where datname = current_database() and application_name = 'jobworker-listen'`,
        );
        assert.ok((rowCount ?? 0) >= 1);
      } finally {
        await admin.end();
      }
      // The reconnection waits on the store's clock: time moves only as the test moves it.
      await until('the catch-all wake-up after reconnecting', () => {
        clock.advance(WATCH_RETRY_MS.first);
        return events.some((e) => e.channel === 'work' && e.payload === '');
      });
      await a.admitJob(makeJob({ spec: { queue: 'after-cut' } }), new Date());
      await until('a wake-up on the new connection', () =>
        events.some((e) => e.channel === 'work' && e.payload === 'after-cut'),
      );
    } finally {
      await stop();
      await a.close();
    }
  });

  it('finds a listening connection that went silent (a firewall dropped it) by its probe, and listens anew', async () => {
    // A TCP relay to the database whose connections can go silent: kept open, passing nothing
    // more, as through a NAT or a firewall that forgot them; connections made after pass.
    const target = new URL(db.url);
    const sockets = new Set<Socket>();
    const silenced = new Set<Socket>();
    const relay = createServer((inbound) => {
      const outbound = connect(Number(target.port || 5432), target.hostname);
      for (const socket of [inbound, outbound]) {
        socket.on('error', () => undefined);
        sockets.add(socket);
      }
      inbound.on('data', (chunk) => {
        if (!silenced.has(inbound)) outbound.write(chunk);
      });
      outbound.on('data', (chunk) => {
        if (!silenced.has(inbound)) inbound.write(chunk);
      });
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayed = new URL(db.url);
    relayed.host = `127.0.0.1:${(relay.address() as AddressInfo).port}`;
    const clock = new ManualClock();
    const a = await PgJobStore.open(relayed.toString(), { max: 2, clock });
    const events: StoreWakeUp[] = [];
    const stop = await a.watch((event) => events.push(event), { probe: { every: 5_000, timeout: 300 } });
    try {
      // Healthy: the probe is answered, and the next one armed.
      clock.advance(5_000);
      await clock.timerSet();
      assert.equal(events.length, 0);
      // Every connection open now goes silent; the next probe gets no answer in time, the
      // connection counts as dropped, and it is opened again after the backoff, on the clock.
      for (const socket of sockets) silenced.add(socket);
      clock.advance(5_000);
      await clock.timerSet();
      await until('the catch-all wake-up after listening anew', () => {
        clock.advance(WATCH_RETRY_MS.first);
        return events.some((e) => e.channel === 'work' && e.payload === '');
      });
      assert.ok(events.some((e) => e.channel === 'accounts' && e.payload === ''));
    } finally {
      await stop();
      await a.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  it('keeps a dependent admitted on one store while another ends its dependency from being stranded', async () => {
    const a = await PgJobStore.open(db.url, { max: 4 });
    const b = await PgJobStore.open(db.url, { max: 4 });
    try {
      for (let round = 0; round < 20; round++) {
        const dep = makeJob({ status: 'running', node: 'node-b' });
        await b.insertJob(dep);
        const [admission] = await Promise.all([
          a.admitJob(makeJob({ spec: { after: [dep.id] } }), new Date()),
          b
            .markFinished(dep.id, {
              status: 'succeeded',
              exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
              finishedAt: new Date(),
              outputBytes: { stdout: 0, stderr: 0 },
            })
            .then(() => b.settleDependents(dep.id, new Date())),
        ]);
        assert.ok(admission.admitted);
        const now = await a.getJob(admission.job.id);
        assert.equal(now?.hold, null, `round ${round}: the dependent still waits for a job that ended`);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("waits for a queue's row that an admission holds, and claims the ready job once the admission commits", async () => {
    // A bound far above how long the test holds the row, however loaded the machine: the claim
    // must wait for the admission, not give up on it.
    const store = await PgJobStore.open(db.url, { max: 2, claimLockWaitMs: 60_000 });
    const admission = new pg.Client({ connectionString: db.url });
    const look = new pg.Client({ connectionString: db.url });
    await admission.connect();
    await look.connect();
    try {
      await store.putQueue('busy-q', { maxWaiting: 100 });
      const ready = makeJob({ spec: { queue: 'busy-q' } });
      await store.admitJob(ready, new Date());
      // Another node admits to the queue under its `maxWaiting`: its transaction holds the row
      // while it counts the waiting jobs and inserts.
      await admission.query('begin');
      await admission.query(`select max_waiting from queues where name = 'busy-q' for update`);
      let settled = false;
      const claim = store.claimReady('busy-q', 'n', 10).finally(() => {
        settled = true;
      });
      await until('the claim to wait for the row, or to end', async () => {
        if (settled) return true;
        const { rows } = await look.query<{ n: string }>(
          `select count(*) as n from pg_stat_activity
            where datname = current_database() and application_name = 'jobworker' and wait_event_type = 'Lock'`,
        );
        return Number(rows[0]!.n) > 0;
      });
      await admission.query('commit');
      // Not passed over (which, on a queue that takes submissions steadily, it was nearly always).
      assert.deepEqual(
        (await claim).map((j) => j.id),
        [ready.id],
      );
    } finally {
      await admission.end();
      await look.end();
      await store.close();
    }
  });

  it('refuses a claim wait that is not a positive integer (zero would be no bound)', async () => {
    for (const claimLockWaitMs of [0, -1, 1.5]) {
      await assert.rejects(PgJobStore.open(db.url, { max: 1, claimLockWaitMs }), {
        code: 'VALIDATION_FAILED',
        message: `Expected \`claimLockWaitMs\` to be a positive integer (ms), got \`${claimLockWaitMs}\``,
      });
    }
  });

  it("passes over a queue whose row another session holds past the claim's wait (a frozen node's claim), and looks at it again on the clock", async () => {
    const clock = new ManualClock();
    const store = await PgJobStore.open(db.url, { max: 2, clock, claimLockWaitMs: 50 });
    const events: StoreWakeUp[] = [];
    const stop = await store.watch((event) => events.push(event));
    // Another node, frozen in the middle of its claim of `held-q`: its transaction holds the row.
    const frozen = new pg.Client({ connectionString: db.url });
    await frozen.connect();
    try {
      const held = makeJob({ spec: { queue: 'held-q' } });
      const free = makeJob({ spec: { queue: 'free-q' } });
      await store.admitJob(held, new Date());
      await store.admitJob(free, new Date());
      await frozen.query('begin');
      await frozen.query(`select * from queues where name = 'held-q' for update`);
      // Not a wait for the row past the claim's bound: nothing, and the next queue is served.
      assert.deepEqual(await store.claimReady('held-q', 'n', 1), []);
      assert.deepEqual(
        (await store.claimReady('free-q', 'n', 1)).map((j) => j.id),
        [free.id],
      );
      // No claim will say when the row is free: the store wakes its dispatcher for it on the clock.
      events.length = 0;
      clock.advance(SKIPPED_QUEUE_RETRY_MS);
      assert.deepEqual(events, [{ channel: 'work', payload: 'held-q' }]);
      // Still held: passed over again, and woken again.
      assert.deepEqual(await store.claimReady('held-q', 'n', 1), []);
      events.length = 0;
      clock.advance(SKIPPED_QUEUE_RETRY_MS);
      assert.deepEqual(events, [{ channel: 'work', payload: 'held-q' }]);
      // Its session ended (it rolled back): the look it woke claims the job.
      await frozen.query('rollback');
      assert.deepEqual(
        (await store.claimReady('held-q', 'n', 1)).map((j) => j.id),
        [held.id],
      );
      // A queue that no job ever named has no row, and is no queue held elsewhere.
      assert.deepEqual(await store.claimReady('never-named-q', 'n', 1), []);
      events.length = 0;
      clock.advance(SKIPPED_QUEUE_RETRY_MS);
      assert.deepEqual(events, []);
    } finally {
      await frozen.end();
      await stop();
      await store.close();
    }
  });

  it("names a node's sessions after it and its server, and gives them keepalives and timeouts below the node timeout", async () => {
    assert.equal(sessionName('n1'), 'jobworker n1');
    assert.equal(sessionName('n1', '0123abcd'), 'jobworker n1 0123abcd');
    // A 63-character id does not fit: two alike in their first characters get two names, and
    // keep the server's tag whole.
    const long = 'a'.repeat(62);
    const names = [
      sessionName(`${long}1`),
      sessionName(`${long}2`),
      sessionName(`${long}1`, '0123abcd'),
      sessionName(`${long}2`, '0123abcd'),
      sessionName(`${long}1`, '4567cdef'),
    ];
    assert.equal(new Set(names).size, names.length);
    for (const name of names) assert.ok(name.length <= 63, name);
    assert.ok(names[2]!.endsWith(' 0123abcd'));
    // Each server's store draws a tag of its own: two servers of one node are told apart.
    const [one, two] = [
      await PgJobStore.open(db.url, { max: 1, nodeId: 'n1' }),
      await PgJobStore.open(db.url, { max: 1, nodeId: 'n1' }),
    ];
    await one.close();
    await two.close();
    assert.match(one.sessionName ?? '', /^jobworker n1 [0-9a-f]{8}$/);
    assert.match(two.sessionName ?? '', /^jobworker n1 [0-9a-f]{8}$/);
    assert.notEqual(one.sessionName, two.sessionName);
    const timeouts = sessionTimeouts(6000);
    assert.ok(timeouts.idleInTransactionMs < timeouts.lockTimeoutMs && timeouts.lockTimeoutMs < 6000);
    assert.ok(sessionTimeouts(2000).lockTimeoutMs < 2000);
    const pool = openPostgres(db.url, { max: 1, applicationName: sessionName('n1'), ...timeouts });
    try {
      // In each setting's own unit (ms, and seconds for the keepalives).
      const { rows } = await sql<{ name: string; setting: string }>`select name, setting from pg_settings
        where name in ('application_name', 'idle_in_transaction_session_timeout', 'lock_timeout', 'tcp_keepalives_idle')
        order by name`.execute(pool);
      assert.deepEqual(Object.fromEntries(rows.map((r) => [r.name, r.setting])), {
        application_name: 'jobworker n1',
        idle_in_transaction_session_timeout: String(timeouts.idleInTransactionMs),
        lock_timeout: String(timeouts.lockTimeoutMs),
        // Over TCP (the tests' server is on 127.0.0.1): what PostgreSQL's side sends.
        tcp_keepalives_idle: '30',
      });
    } finally {
      await pool.destroy();
    }
  });

  it('a lock waited for past the lock timeout is STORE_UNAVAILABLE (try again), as is a session ended for idling', () => {
    for (const code of ['55P03', '25P03']) {
      const error = pgStoreError(
        Object.assign(new Error('canceling statement'), { code }),
        'postgres://u@h/db',
      );
      assert.ok(error instanceof PostgresUnavailableError, code);
      assert.equal(error.code, 'STORE_UNAVAILABLE');
    }
  });

  it("starts no delayed job before its time on the database's clock, whatever a node's clock says", async () => {
    const own = await createTestDatabase('pg_clock');
    const DAY = 24 * 3600 * 1000;
    // A node whose clock runs a day ahead.
    const clock = new ManualClock(new Date(Date.now() + DAY));
    const store = await PgJobStore.open(own.url, { max: 2, clock });
    try {
      const runAt = new Date(Date.now() + 3600 * 1000);
      // Admitted by a node whose clock is right: delayed.
      const delayed = makeJob({ runAt, spec: { queue: 'clock-q' } });
      const first = await store.admitJob(delayed, new Date());
      assert.ok(first.admitted && first.job.hold === 'delay');
      // Admitted by the node ahead, to whom its time has come: delayed all the same.
      const early = makeJob({ runAt, spec: { queue: 'clock-q' } });
      const second = await store.admitJob(early, clock.now());
      assert.ok(second.admitted && second.job.hold === 'delay');
      // Released from its dependency by the node ahead: delayed too.
      const dep = makeJob({ spec: { queue: 'clock-dep-q' } });
      await store.admitJob(dep, new Date());
      const waiting = makeJob({ runAt, spec: { queue: 'clock-q', after: [dep.id] } });
      await store.admitJob(waiting, new Date());
      await store.claimReady('clock-dep-q', 'n', 1);
      await store.markStarted(dep.id, { pid: 1, startTicks: 1, bootId: 'b', cgroups: [] }, new Date());
      await store.markFinished(dep.id, {
        status: 'succeeded',
        exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
        finishedAt: new Date(),
        outputBytes: { stdout: 0, stderr: 0 },
      });
      assert.deepEqual(
        (await store.settleDependents(dep.id, clock.now())).map((j) => [j.id, j.hold]),
        [[waiting.id, 'delay']],
      );
      // Its pass promotes none of them.
      assert.equal(await store.promoteDue(clock.now()), 0);
      for (const job of [delayed, early, waiting]) assert.equal((await store.getJob(job.id))?.hold, 'delay');
      // Its dispatcher's timer is set for when the database's clock reaches their time, as its own
      // clock will read it then (a day later), not at once and over and over.
      const next = (await store.nextRunAt())!;
      assert.ok(next.getTime() > runAt.getTime() + DAY - 60_000, next.toISOString());
      // A node whose clock is right (or behind) is told their time as it is.
      const right = await PgJobStore.open(own.url, { max: 1 });
      try {
        assert.equal((await right.nextRunAt())?.getTime(), runAt.getTime());
      } finally {
        await right.close();
      }
    } finally {
      await store.close();
      await own.drop();
    }
  });

  it('an id already stored is a ValidationError on id', async () => {
    const store = await PgJobStore.open(db.url, { max: 2 });
    try {
      const job = makeJob();
      await store.insertJob(job);
      await assert.rejects(store.insertJob(job), { name: 'ValidationError', field: 'id' });
    } finally {
      await store.close();
    }
  });

  it('an unreachable database is named in the error, without its password', async () => {
    const url = 'postgres://postgres:s3cret@127.0.0.1:1/nowhere';
    await assert.rejects(PgJobStore.open(url, { connectionTimeoutMs: 2000 }), (error: unknown) => {
      assert.ok(error instanceof PostgresUnavailableError, String(error));
      assert.match(error.message, /postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nowhere/);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
  });

  it('a database that does not exist is named in the error', async () => {
    const url = new URL(db.url);
    url.pathname = '/jobworker_test_no_such_database';
    await assert.rejects(PgJobStore.open(url.toString()), (error: unknown) => {
      assert.ok(error instanceof PostgresUnavailableError, String(error));
      assert.match(
        error.message,
        /Cannot open the job database postgres:\/\/.*jobworker_test_no_such_database/,
      );
      assert.match(error.message, /3D000/);
      return true;
    });
  });

  it('a full disk (SQLSTATE 53100) is an InsufficientStorageError naming the database', () => {
    const error = pgStoreError(
      Object.assign(new Error('could not extend file: No space left on device'), { code: '53100' }),
      'postgres://u:pw@db.example/jobs',
    );
    assert.ok(error instanceof InsufficientStorageError);
    assert.match(error.message, /u:\*\*\*@db\.example\/jobs/);
    assert.match(error.message, /No space left on device/);
  });

  describe('history plans at scale', () => {
    const FORMS: { form: string; query: Omit<JobListQuery, 'limit' | 'cursor'> }[] = [
      { form: 'no filter', query: {} },
      { form: 'status', query: { status: ['running'] } },
      { form: 'statuses', query: { status: ['queued', 'failed', 'lost'] } },
      { form: 'owner', query: { owner: 'alice' } },
      { form: 'owner and status', query: { owner: 'alice', status: ['succeeded'] } },
      { form: 'name', query: { name: 'backup' } },
      { form: 'queue', query: { queue: 'batch' } },
      { form: 'label', query: { label: { key: 'env', value: 'prod' } } },
      { form: 'id prefix', query: { idPrefix: '0190' } },
    ];

    it('reads the newest page and a job by id from an index, with no sort and no sequential scan', async () => {
      const store = await PgJobStore.open(db.url, { max: 2 });
      const kysely = openPostgres(db.url, { max: 1 });
      try {
        // 20,000 jobs, most of them finished as in a real history, then statistics: the planner
        // then picks what it would at scale.
        await sql`insert into jobs (id, status, owner, name, node, created_at, spec, queue, finished_at, run_at, hold)
          select lpad(to_hex(i), 8, '0') || '-0000-7000-8000-000000000000', s.status,
                 (array['alice','bob','carol'])[1 + i % 3],
                 case when i % 10 = 0 then 'backup' end, 'n', i, '{"command":"echo","args":[]}',
                 (array['default','batch'])[1 + i % 2],
                 case when s.status not in ('queued', 'running') then i end,
                 case when i % 200 = 0 then i end,
                 case when i % 200 = 0 then 'delay' end
          from generate_series(1, 20000) as i,
               lateral (select case i % 100 when 0 then 'queued' when 1 then 'running'
                        else (array['succeeded','failed'])[1 + i % 2] end as status) as s`.execute(kysely);
        await sql`insert into job_labels (job_id, key, value, owner)
          select id, 'env', 'prod', owner from jobs where created_at % 7 = 0`.execute(kysely);
        await sql`analyze`.execute(kysely);
        for (const { form, query } of FORMS) {
          for (const cursor of [undefined, '00002000-0000-7000-8000-000000000000']) {
            const compiled = pgListJobsQuery(
              kysely,
              checkListQuery({ ...query, limit: 50, ...(cursor ? { cursor } : {}) }),
            );
            const plan = await explain(kysely, compiled);
            assert.doesNotMatch(plan, /Seq Scan/, `${form}: ${plan}`);
            // The newest page reads the primary key backwards and stops. A filter may instead
            // read its few matches and sort them, when the planner knows they are few (a status
            // rarely held, like running): only a sort of a small set is allowed.
            for (const sort of plan.matchAll(
              /(?:^|->)\s*(?:Incremental )?Sort\s+\(cost=[\d.]+\.\.[\d.]+ rows=(\d+)/gm,
            )) {
              assert.ok(form !== 'no filter', `the newest page is sorted: ${plan}`);
              assert.ok(Number(sort[1]) <= 1000, `${form} sorts ${sort[1]} rows: ${plan}`);
            }
          }
        }
        // Dispatch: each question is a range of a partial index (of ready, waiting, delayed or
        // active jobs), never of the history.
        const dispatch: [string, CompiledQuery][] = [
          ['countActive', countActiveQuery(kysely, 'default').compile()],
          ['claim', claimStatement('default', 'n', 5).compile(kysely)],
          ['ready queues', readyQueuesStatement().compile(kysely)],
          ['next run', nextRunAtQuery(kysely).compile()],
          ['queue states', queueStatesStatement().compile(kysely)],
        ];
        for (const [what, query] of dispatch) {
          const plan = await explain(kysely, query);
          assert.doesNotMatch(plan, /Seq Scan on jobs/, `${what}: ${plan}`);
          assert.match(plan, /jobs_(active_by_queue|ready|delayed|waiting_by_queue)/, `${what}: ${plan}`);
        }
        // Every queue's counts: one walk of each partial index, grouped, never the history (the
        // active jobs' may be read from either index that holds only them).
        const states = await explain(kysely, queueStatesStatement().compile(kysely));
        assert.match(states, /jobs_waiting_by_queue/, states);
        assert.match(states, /jobs_active_by_(queue|node)/, states);
        const byId = await explain(
          kysely,
          kysely
            .selectFrom('jobs')
            .selectAll()
            .where('id', '=', '00000010-0000-7000-8000-000000000000')
            .compile(),
        );
        assert.match(byId, /Index Scan using jobs_pkey/);
        const page = await store.listJobs({ queue: 'default', idPrefix: '00004e', limit: 3 });
        assert.equal(page.jobs[0]?.id, '00004e20-0000-7000-8000-000000000000');
      } finally {
        await kysely.destroy();
        await store.close();
      }
    });
  });
});

async function explain(db: ReturnType<typeof openPostgres>, query: CompiledQuery): Promise<string> {
  const { rows } = await db.executeQuery<{ 'QUERY PLAN': string }>(
    CompiledQuery.raw(`explain ${query.sql}`, [...query.parameters]),
  );
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}
