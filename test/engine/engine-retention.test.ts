import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JobEngine } from '../../src/engine/job-engine.ts';
import { isSameProcessAlive } from '../../src/runtime/process-identity.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { openHarness, startRunning } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { waitForFileText } from '../helpers/wait.ts';

const me = { user: 'tester' };
const HOUR = 3600 * 1000;
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

describe('engine history retention', () => {
  it('deletes finished jobs older than keepForMs with their directories on the clock; active jobs stay', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    const h = await openHarness({ clock, keepForMs: HOUR, keepJobs: null, retentionIntervalMs: 60_000 });
    try {
      const { engine, dataDir } = h;
      await once(engine, 'history:pruned'); // the pass at start, on an empty history
      const done = [];
      for (let i = 0; i < 3; i++)
        done.push(await engine.waitFor((await engine.start({ command: 'true' }, me)).id));
      const running = await startRunning(
        engine,
        { command: 'sh', args: ['-c', 'echo ready; exec sleep 60'] },
        me,
      );
      await waitForFileText(join(dataDir, 'jobs', running.id, 'stdout'), 'ready');
      for (const job of done) assert.equal(job.status, 'succeeded');

      // A pass within the hour deletes nothing.
      let pruned = once(engine, 'history:pruned');
      clock.advance(60_000);
      assert.deepEqual(await pruned, [0]);
      // The first pass after the hour deletes all three, rows first, then directories.
      pruned = once(engine, 'history:pruned');
      clock.advance(HOUR);
      assert.deepEqual(await pruned, [3]);
      for (const job of done) {
        await assert.rejects(engine.get(job.id), { code: 'NOT_FOUND' });
        assert.equal(await exists(join(dataDir, 'jobs', job.id)), false, 'its output is gone');
      }
      assert.equal((await engine.get(running.id)).status, 'running', 'a running job is never pruned');
      assert.ok(await exists(join(dataDir, 'jobs', running.id)));
      await engine.stop(running.id, me, { graceMs: 0 });
      await engine.waitFor(running.id);
    } finally {
      await h.destroy();
    }
  });

  it('keeps the newest keepJobs finished jobs', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    const h = await openHarness({ clock, keepForMs: null, keepJobs: 2, retentionIntervalMs: 60_000 });
    try {
      const { engine } = h;
      await once(engine, 'history:pruned');
      const ids = [];
      for (let i = 0; i < 5; i++) {
        ids.push((await engine.waitFor((await engine.start({ command: 'true' }, me)).id)).id);
        clock.advance(1); // each finishes at a later time
      }
      assert.equal(await engine.applyRetention(), 3);
      const left = await engine.list({ limit: 10 });
      assert.deepEqual(
        left.jobs.map((j) => j.id),
        [ids[4], ids[3]],
      );
    } finally {
      await h.destroy();
    }
  });

  it('removes the directory of a job whose row went before a crash, at the next pass', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    const h = await openHarness({ clock });
    try {
      const { engine, store, dataDir } = h;
      await once(engine, 'history:pruned');
      const job = await engine.waitFor((await engine.start({ command: 'echo', args: ['x'] }, me)).id);
      // The state a crash between the two steps leaves: the row deleted, the directory still there.
      await store.deleteJob(job.id);
      const dir = join(dataDir, 'jobs', job.id);
      assert.ok(await exists(dir));
      assert.equal(await engine.applyRetention(), 0);
      assert.equal(await exists(dir), false, 'the orphan directory is removed');
      assert.deepEqual(await store.listDirsToRemove(10), []);
    } finally {
      await h.destroy();
    }
  });

  it("ends a run left alive in a deleted job's directory before removing it (a job of a node once lost)", async () => {
    // A node declared lost runs on; its jobs are recorded `lost` by the others and may be deleted.
    // Back, it finds none of them on record: the directory that names such a run is the only trace
    // of it, and once that went first, the run went on unsupervised for ever.
    const h = await openHarness({ keepForMs: null, keepJobs: null });
    const job = await startRunning(h.engine, { command: 'sleep', args: ['600'] }, me);
    assert.ok(job.process);
    let reopened: Awaited<ReturnType<typeof h.reopen>> | undefined;
    try {
      await h.close();
      const store = await SqliteJobStore.open(join(h.dataDir, 'jobworker.db'));
      await store.markFinished(job.id, {
        status: 'lost',
        exit: { exitCode: null, signal: null, reason: 'its node was lost' },
        finishedAt: new Date(),
        outputBytes: { stdout: 0, stderr: 0 },
      });
      await store.deleteJob(job.id);
      await store.close();
      assert.ok(isSameProcessAlive(job.process), 'the run outlived its server and its record');

      reopened = await h.reopen();
      await reopened.engine.applyRetention();
      assert.equal(isSameProcessAlive(job.process), false, 'the run is ended');
      assert.equal(await exists(join(h.dataDir, 'jobs', job.id)), false, 'and its directory removed');
    } finally {
      if (isSameProcessAlive(job.process)) process.kill(-job.process.pid, 'SIGKILL');
      await (reopened ?? h).destroy();
    }
  });

  it('a pass that fails reports the error, and the next pass still comes on the clock', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-engine-'));
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    // The store fails the first question of one pass (a disk error, say), then works again.
    let failures = 1;
    const failing = new Proxy(store, {
      get(target, prop) {
        if (prop === 'retentionBound' && failures > 0) {
          failures--;
          return () => Promise.reject(new Error('disk I/O error'));
        }
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const errors: Error[] = [];
    const engine = await JobEngine.open({
      dataDir,
      store: failing,
      clock,
      node: 'test-node',
      keepForMs: 0,
      keepJobs: null,
      retentionIntervalMs: 60_000,
    });
    engine.on('engine:error', (err) => errors.push(err));
    try {
      const failed = once(engine, 'engine:error');
      const job = await engine.waitFor((await engine.start({ command: 'true' }, me)).id);
      assert.deepEqual((await failed).map(String), ['Error: disk I/O error', 'null']);
      assert.ok(await engine.get(job.id), 'nothing was deleted by the failed pass');
      const pruned = once(engine, 'history:pruned');
      clock.advance(60_000);
      assert.deepEqual(await pruned, [1], 'the timer was armed again after the failure');
      await assert.rejects(engine.get(job.id), { code: 'NOT_FOUND' });
      assert.equal(errors.length, 1);
    } finally {
      await engine.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10 });
    }
  });
});
