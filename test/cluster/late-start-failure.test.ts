import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JobworkerError } from '../../src/core/errors.ts';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import { WRITE_RETRY_MAX_MS } from '../../src/engine/until-written.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';

const T0 = new Date(Date.UTC(2026, 11, 3, 9, 0, 0));
const RETRY = { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } };
/** What a launch writes once a job could not start: its failure, or its claim given back. */
const LATE_WRITES = new Set(['markFinished', 'markRetried', 'releaseClaim']);

/**
 * `store` as a node cut off from PostgreSQL sees it while `cut` is set: every call fails as the
 * store's own would (`STORE_UNAVAILABLE`); `lateWrites` counts the launch's writes refused so.
 */
function cutOff(store: PgJobStore) {
  const state = { cut: false, lateWrites: 0 };
  const object = new Proxy(store, {
    get(real, key) {
      const value = Reflect.get(real, key, real) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (!state.cut) return (value as (...a: unknown[]) => unknown).apply(real, args);
        if (LATE_WRITES.has(String(key))) state.lateWrites++;
        return Promise.reject(new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (cut off)'));
      };
    },
  });
  return { store: object as JobStore, state };
}

describe("a node's late failure to start, on PostgreSQL", () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase('late_start_failure');
  });
  after(async () => {
    await database?.drop();
  });

  for (const [why, error] of [
    [
      'the store could not be read',
      new JobworkerError('STORE_UNAVAILABLE', 'the pool account could not be read (cut off)'),
    ],
    ['its account is refused here', new JobworkerError('ACCOUNT_UNAVAILABLE', 'no such account here')],
  ] as const) {
    it(`a node cut off while its claim could not start (${why}) does not end, nor run twice, the job another node took since`, async () => {
      const clock = new ManualClock(T0);
      const dataDir = await mkdtemp(join(tmpdir(), 'jw-late-failure-'));
      const real = await PgJobStore.open(database.url, { clock });
      const other = await PgJobStore.open(database.url);
      const a = cutOff(real);
      // Each case its own queue and nodes: what one case leaves on failure must not reach the next.
      const queue = `late-${error.code.toLowerCase()}`;
      const [nodeA, nodeB] = [`${queue}-a`, `${queue}-b`];
      let checked = false;
      const engine = await JobEngine.open({
        node: nodeA,
        dataDir,
        store: a.store,
        clock,
        // Node a claims the job and checks its account; the check fails, and node a is cut off
        // from the store before it can write what became of the claim.
        checkAccount: async (job) => {
          if (checked || job.spec.queue !== queue) return;
          checked = true;
          a.state.cut = true;
          throw error;
        },
      });
      try {
        const job = await engine.start({ command: 'true', queue, retry: RETRY }, { user: 'root' });
        await until("node a's write to be refused", () => a.state.lateWrites > 0);
        // Node a is declared lost: its claim goes back to the queue (as the sweep gives it back),
        // and node b claims the job and starts it.
        assert.equal((await other.releaseClaim(job.id, nodeA)).hold, null);
        assert.equal((await other.claimReady(queue, nodeB, 1))[0]?.id, job.id);
        const process = { pid: 999_999, startTicks: 1, bootId: 'x', cgroups: [] };
        await other.markStarted(job.id, process, T0, nodeB);
        // Node a's network comes back: its write, tried again on its clock, now reaches the store.
        a.state.cut = false;
        clock.advance(WRITE_RETRY_MAX_MS);
        await until("node a's launch to end", () => engine.drainState.running === 0);
        const stored = (await other.getJob(job.id)) as Job;
        assert.deepEqual(
          [stored.status, stored.node, stored.retriedAs, stored.exit],
          ['running', nodeB, null, null],
          'the run on node b is left as it is',
        );
        const { jobs } = await other.listJobs({ limit: 10, queue });
        assert.deepEqual(
          jobs.map((j) => j.id),
          [job.id],
          'no second attempt was queued',
        );
        // Node b records the job's end as its own.
        const ended = await other.markFinished(job.id, {
          status: 'succeeded',
          exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
          finishedAt: T0,
          outputBytes: { stdout: 0, stderr: 0 },
        });
        assert.deepEqual([ended.status, ended.node], ['succeeded', nodeB]);
      } finally {
        await engine.close();
        await real.close();
        await other.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }
});
