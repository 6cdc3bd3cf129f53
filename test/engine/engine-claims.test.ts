import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JobworkerError } from '../../src/core/errors.ts';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { openHarness, startRunning } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';
import { makeJob } from '../store/make-job.ts';

const me = { user: 'tester' };
const unavailable = () => new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (injected)');

describe("the engine and its claims' ends", () => {
  it('a store that could not be read while a claim was checked gives the claim back: the job runs, not recorded failed', async () => {
    const clock = new ManualClock();
    let checks = 0;
    const h = await openHarness({
      clock,
      // The account's check reads the store (the pool's accounts): a blip fails the first.
      checkAccount: async () => {
        if (checks++ === 0) throw unavailable();
      },
    });
    try {
      const job = await h.engine.start({ command: 'true' }, me);
      await until('the first launch to end', () => checks === 1 && h.engine.drainState.running === 0);
      const back = (await h.store.getJob(job.id))!;
      assert.deepEqual([back.status, back.exit], ['queued', null], 'not recorded failed');
      // Claimed again a moment later (a pass at once would find the store still away).
      clock.advance(1000);
      const done = await h.engine.waitFor(job.id, AbortSignal.timeout(20_000));
      assert.deepEqual([done.status, done.attempt, done.retriedAs], ['succeeded', 1, null]);
      assert.equal(checks, 2);
    } finally {
      await h.destroy();
    }
  });

  it("a job whose end the store refuses (decided elsewhere) leaves this node's supervision, and frees its slot", async () => {
    const h = await openHarness({ maxRunning: 1 });
    try {
      const errors: [Error, string | null][] = [];
      h.engine.on('engine:error', (err: Error, jobId: string | null) => errors.push([err, jobId]));
      const first = await startRunning(h.engine, { command: 'sleep', args: ['60'] });
      // Another node decides it (this one was declared lost meanwhile, say) while it runs here.
      const decided = await h.store.markFinished(first.id, {
        status: 'lost',
        exit: { exitCode: null, signal: null, reason: 'decided elsewhere' },
        finishedAt: new Date(),
        outputBytes: { stdout: 0, stderr: 0 },
      });
      const second = await h.engine.start({ command: 'true' }, me);
      assert.equal((await h.engine.get(second.id)).status, 'queued', 'the node runs as many as it may');
      const finished = once(h.engine, 'job:finished', { signal: AbortSignal.timeout(20_000) });
      process.kill(first.process!.pid, 'SIGKILL');
      const [told] = (await finished) as [Job];
      assert.deepEqual([told.id, told.status], [first.id, 'lost'], 'the end on record is told');
      assert.equal(
        (await h.engine.waitFor(second.id, AbortSignal.timeout(20_000))).status,
        'succeeded',
        'its slot went to the next job',
      );
      assert.equal(h.engine.drainState.running, 0);
      assert.deepEqual(await h.store.getJob(first.id), decided, 'the decision on record is kept');
      assert.deepEqual(
        errors.map(([err, id]) => [id, /the store holds another decision/.test(err.message)]),
        [[first.id, true]],
      );
    } finally {
      await h.destroy();
    }
  });
});

describe('a drain that comes while claiming gives every claim back, even when a release fails', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase('drain_claims');
  });
  after(async () => {
    await database?.drop();
  });

  for (const [name, open] of [
    ['SQLite', (dir: string) => SqliteJobStore.open(join(dir, 'jobworker.db'))],
    ['PostgreSQL', () => PgJobStore.open(database.url)],
  ] as const) {
    it(`on ${name}: the claims whose release failed are given back at the next pass, without a restart`, async () => {
      const clock = new ManualClock();
      const dir = await mkdtemp(join(tmpdir(), 'jw-drain-claims-'));
      const real: JobStore = await open(dir);
      let engine: JobEngine | undefined;
      let armed = false;
      let releases = 0;
      // The store as the engine sees it: a drain arrives while a claim runs (once armed), and the
      // first release of a claim fails (the store away a moment).
      const store = new Proxy(real, {
        get(target, key) {
          const value = Reflect.get(target, key, target) as unknown;
          if (typeof value !== 'function') return value;
          if (key === 'claimReady') {
            return async (...args: Parameters<JobStore['claimReady']>) => {
              const claimed = await target.claimReady(...args);
              if (armed && claimed.length > 0) engine?.drain();
              return claimed;
            };
          }
          if (key === 'releaseClaim') {
            return async (...args: Parameters<JobStore['releaseClaim']>) => {
              if (releases++ === 0) throw unavailable();
              return target.releaseClaim(...args);
            };
          }
          return (value as (...a: unknown[]) => unknown).bind(target);
        },
      });
      const node = `drain-${name.toLowerCase()}`;
      engine = await JobEngine.open({ node, dataDir: dir, store, clock });
      try {
        const errors: Error[] = [];
        engine.on('engine:error', (err: Error) => errors.push(err));
        const queue = `drain-${name.toLowerCase()}`;
        const jobs = [
          makeJob({ spec: { queue, command: 'true' }, node }),
          makeJob({ spec: { queue, command: 'true' }, node }),
        ];
        for (const job of jobs) assert.ok((await real.admitJob(job, new Date())).admitted);
        armed = true;
        await engine.dispatch();
        assert.equal(engine.drainState.draining, true);
        assert.equal(releases, 2, 'the claim after the one that failed was given back too');
        assert.deepEqual(
          errors.map((e) => e.message),
          ['the store did not answer (injected)'],
        );
        // The next pass (soon, on the clock) gives back the claim whose release failed: nothing is
        // left claimed by this node, holding its queue's slots, until a restart.
        clock.advance(1000);
        await until('every claim to be given back', async () => (await real.listStarting(node)).length === 0);
        for (const job of jobs) {
          const now = (await real.getJob(job.id))!;
          assert.deepEqual([now.status, now.hold], ['queued', null]);
        }
        assert.equal(await real.countActive(queue), 0);
        armed = false;
        engine.undrain();
        for (const job of jobs) {
          assert.equal((await engine.waitFor(job.id, AbortSignal.timeout(20_000))).status, 'succeeded');
        }
      } finally {
        await engine.close();
        await real.close();
        await rm(dir, { recursive: true, force: true, maxRetries: 10 });
      }
    });
  }
});
