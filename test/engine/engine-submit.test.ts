import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { within } from '../api/api-harness.ts';
import { followAll } from '../helpers/engine-harness.ts';

const me = { user: 'tester' };

/**
 * A real SQLite store whose `markStarted` (the last step of a launch) waits until the test opens
 * the gate, and says which job it holds: a launch as slow as the test wants, driven by events.
 */
function gatedStore(store: SqliteJobStore): {
  store: JobStore;
  held: Promise<string>;
  open: () => void;
} {
  const gate = Promise.withResolvers<void>();
  const held = Promise.withResolvers<string>();
  const gated = new Proxy(store, {
    get(target, property) {
      if (property === 'markStarted') {
        return async (...args: Parameters<JobStore['markStarted']>) => {
          held.resolve(args[0]);
          await gate.promise;
          return target.markStarted(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: gated, held: held.promise, open: () => gate.resolve() };
}

describe('engine submission', () => {
  it('defect 12: a submission answers once admitted, not after the launches of a dispatch pass', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-submit-'));
    const sqlite = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    const { store, held, open } = gatedStore(sqlite);
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store });
    try {
      // The pass this submission kicks claims it and is held in its launch, before `running`.
      const first = await within(engine.submit({ command: 'true' }, me), 10_000, 'the first submission');
      assert.equal(first.job.status, 'queued');
      assert.equal(await held, first.job.id, 'its launch is the one held');
      // A queue of submissions behind the held launch: each answers, committed and queued.
      const more: Job[] = [];
      for (let i = 0; i < 20; i++) {
        const { job, created } = await within(
          engine.submit({ command: 'echo', args: [String(i)] }, me),
          10_000,
          `submission ${i} while a launch is held`,
        );
        assert.ok(created);
        assert.equal(job.status, 'queued');
        assert.deepEqual((await sqlite.getJob(job.id))?.status, 'queued', 'durably admitted');
        more.push(job);
      }
      assert.equal((await sqlite.getJob(first.job.id))?.status, 'queued', 'the pass has not ended');
      assert.equal(engine.drainState.running, 1, 'one launch under way, held');
      // Dispatch goes on by itself once the launch may end: every job runs, nobody kicks it.
      open();
      assert.equal((await engine.waitFor(first.job.id)).status, 'succeeded');
      for (const [i, job] of more.entries()) {
        const { data, end } = await followAll(engine, job.id, 'stdout');
        assert.deepEqual([end.status, data.toString()], ['succeeded', `${i}\n`]);
      }
    } finally {
      open(); // a failed assertion must not leave the launch held: close waits for it
      await engine.close();
      await sqlite.close();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10 });
    }
  });
});
