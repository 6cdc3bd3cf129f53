import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp, { mkdtemp, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { followAll, openHarness, readAll, startRunning } from '../helpers/engine-harness.ts';
import { waitForFileText } from '../helpers/wait.ts';

const me = { user: 'tester' };

/**
 * A real SQLite store whose `markStarted` waits for the test to let it go, then fails: the
 * failure a full disk or a lost database connection causes after the job's processes exist.
 */
function storeFailingMarkStarted(store: SqliteJobStore): {
  store: JobStore;
  called: Promise<void>;
  fail: () => void;
} {
  let onCalled!: () => void;
  let release!: () => void;
  const called = new Promise<void>((resolve) => (onCalled = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  const markStarted = async (): Promise<Job> => {
    onCalled();
    await gate;
    throw new Error('disk I/O error (injected)');
  };
  const proxy = new Proxy(store, {
    get(target, key) {
      if (key === 'markStarted') return markStarted;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: proxy, called, fail: release };
}

describe('engine failure paths', () => {
  let dir: string;
  let real: SqliteJobStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-failure-'));
    real = await SqliteJobStore.open(join(dir, 'jobworker.db'));
  });
  after(async () => {
    await real.close();
    await rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  /** Opens an engine whose next markStarted fails when the test says so; closed by a hook, so a hang fails the test. */
  async function engineWithFailingStart(
    t: { after: (fn: () => Promise<void>) => void },
    spec: { command: string; args: string[] } = { command: 'sleep', args: ['60'] },
  ) {
    const failing = storeFailingMarkStarted(real);
    const engine = await JobEngine.open({ node: 'test-node', dataDir: dir, store: failing.store });
    t.after(() => engine.close());
    const submitted = engine.start(spec, me);
    await failing.called;
    const job = (await engine.list({ limit: 1 })).jobs[0]!;
    return { engine, job, submitted, fail: failing.fail };
  }

  it('defect 7: a failed markStarted leaves no output watch behind, so its followers end', {
    timeout: 30_000,
  }, async (t) => {
    const { engine, job, submitted, fail } = await engineWithFailingStart(t);
    const followed = followAll(engine, job.id, 'all');
    fail();
    await submitted;
    const { end } = await followed;
    assert.equal(end.status, 'failed');
    assert.match(
      end.exit?.reason ?? '',
      /^failed to start: its start could not be recorded, so it was stopped: disk I\/O error \(injected\)/,
    );
  });

  it('a job whose start could not be recorded, stopped after it printed, keeps what it printed', {
    timeout: 30_000,
  }, async (t) => {
    const { engine, job, submitted, fail } = await engineWithFailingStart(t, {
      command: 'sh',
      args: ['-c', 'echo printed; echo oops >&2; exec sleep 60'],
    });
    // Its command ran before its start was to be recorded: what it printed is on disk.
    await waitForFileText(join(dir, 'jobs', job.id, 'stderr'), 'oops\n');
    await waitForFileText(join(dir, 'jobs', job.id, 'stdout'), 'printed\n');
    fail();
    await submitted;
    const ended = await engine.waitFor(job.id);
    assert.equal(ended.status, 'failed');
    assert.deepEqual(ended.outputBytes, { stdout: 8, stderr: 5 });
    const all = await readAll(engine, job.id, 'all');
    assert.deepEqual(all.toString().split('\n').sort(), ['', 'oops', 'printed']);
  });

  it('defect 7: drained() waiting while a launch fails resolves once the launch is let go', {
    timeout: 30_000,
  }, async (t) => {
    const { engine, job, submitted, fail } = await engineWithFailingStart(t);
    const drained = engine.drained();
    fail();
    await submitted;
    assert.equal((await engine.waitFor(job.id)).status, 'failed');
    assert.deepEqual(await drained, { draining: false, running: 0 });
  });
});

describe('engine failure paths: the end of a job', () => {
  it("a result that cannot be opened at first (too many open files) is read again and kept, not thrown away as the job's error", async (t) => {
    const h = await openHarness();
    t.after(() => h.destroy());
    const errors: string[] = [];
    h.engine.on('engine:error', (err, jobId) => errors.push(`${jobId}: ${err.message}`));
    // The first open of a result fails as a process out of descriptors does.
    let refused = 0;
    const realOpen = fsp.open;
    t.mock.method(fsp, 'open', (...args: Parameters<typeof fsp.open>) => {
      if (String(args[0]).endsWith('/result.json') && refused === 0) {
        refused++;
        return Promise.reject(
          Object.assign(new Error('EMFILE: too many open files, open (injected)'), { code: 'EMFILE' }),
        );
      }
      return realOpen(...args);
    });
    syncBuiltinESMExports();
    t.after(() => {
      t.mock.restoreAll();
      syncBuiltinESMExports();
    });
    const job = await h.engine.start({ command: `echo 42 > "$JOBWORKER_RESULT"`, shell: true }, me);
    // Bounded: should the failure not pass, the end would never be recorded.
    const done = await h.engine.waitFor(job.id, AbortSignal.timeout(30_000));
    assert.equal(refused, 1, 'the first open failed');
    assert.equal(done.status, 'succeeded');
    assert.equal(done.resultError, null);
    assert.equal(await h.engine.result(job.id), '42');
    assert.ok(
      errors.some((e) =>
        e.startsWith(`${job.id}: the end of the job could not be read; retrying until it can:`),
      ),
      errors.join('\n'),
    );
  });

  it('an end that cannot be read at first (too many open files) is read again and recorded, not left running', async (t) => {
    const h = await openHarness();
    t.after(() => h.destroy());
    const errors: string[] = [];
    h.engine.on('engine:error', (err, jobId) => errors.push(`${jobId}: ${err.message}`));
    const job = await startRunning(h.engine, { command: 'sleep', args: ['60'] }, me);
    // The first open of its exit record fails as a process out of descriptors does.
    let refused = 0;
    const realOpen = fs.openSync;
    t.mock.method(fs, 'openSync', (...args: Parameters<typeof fs.openSync>) => {
      if (String(args[0]).endsWith(`/${job.id}/exit`) && refused === 0) {
        refused++;
        throw Object.assign(new Error('EMFILE: too many open files, open (injected)'), { code: 'EMFILE' });
      }
      return realOpen(...args);
    });
    syncBuiltinESMExports();
    t.after(() => {
      t.mock.restoreAll();
      syncBuiltinESMExports();
    });
    // A grace: `sleep` ends on the SIGTERM itself, which its exit record says.
    await h.engine.stop(job.id, me, { graceMs: 10_000 });
    // Bounded: without the retry the end is never recorded, and the wait would last forever.
    const done = await h.engine.waitFor(job.id, AbortSignal.timeout(30_000));
    assert.equal(refused, 1, 'the first read failed');
    assert.equal(done.status, 'stopped');
    assert.equal(done.exit?.signal, 'SIGTERM', 'from the exit record, read on the second try');
    assert.ok(
      errors.some(
        (e) =>
          e ===
          `${job.id}: the end of the job could not be read; retrying until it can: Error: EMFILE: too many open files, open (injected)`,
      ),
      errors.join('\n'),
    );
  });
});
