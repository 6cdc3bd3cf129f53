import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IllegalTransitionError, InsufficientStorageError } from '../../src/core/errors.ts';
import { type Job, type StopRequest, TIMEOUT_STOPPER } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const me = { user: 'tester' };
/** Timed out at once, it ignores SIGTERM for its timeout's grace; retried up to twice. */
const GRACED_TIMEOUT = {
  command: 'sh',
  args: ['-c', 'trap "" TERM; while :; do sleep 0.05; done'],
  timeoutMs: 100,
  retry: { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } },
};

/**
 * Holds the store's next claim of a job until `release`: the job claimed, its launch not begun.
 * `claimed` resolves once it is held; claims after it go through as they are.
 */
function holdNextClaim(store: SqliteJobStore): { claimed: Promise<void>; release: () => void } {
  const { claimReady } = store;
  const gate = Promise.withResolvers<void>();
  const claimed = Promise.withResolvers<void>();
  store.claimReady = async (...args: Parameters<typeof claimReady>) => {
    const jobs = await claimReady.apply(store, args);
    if (jobs.length > 0) {
      store.claimReady = claimReady;
      claimed.resolve();
      await gate.promise;
    }
    return jobs;
  };
  return { claimed: claimed.promise, release: () => gate.resolve() };
}

describe('engine stop and timeout', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('stops a job and its setsid grandchild that ignore SIGTERM, recording a forced kill', async () => {
    const pidsFile = join(h.dataDir, 'stubborn.pids');
    const job = await startRunning(
      h.engine,
      { command: join(FIXTURES, 'stubborn-tree.sh'), args: [pidsFile] },
      me,
    );
    const pids = (await waitForFileText(pidsFile, '\n')).trim().split(' ').map(Number);
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    const stopping = await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 200 });
    assert.equal(stopping.changed, true);
    assert.equal(stopping.job.status, 'running', 'the stop is recorded before the job is gone');
    assert.equal(stopping.job.stop?.by, 'alice');
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'stopped');
    assert.equal(done.stopForced, true);
    assert.match(done.exit?.reason ?? '', /^stopped by alice: killed by SIGKILL after 200 ms grace$/);
    // Without cgroups only the process group can be killed: a setsid escapee outlives it, the
    // weaker guarantee docs/architecture.md states. With a cgroup, nothing of the tree is left.
    const tree = h.engine.cgroupMode === 'none' ? [job.process!.pid] : [job.process!.pid, ...pids];
    for (const pid of tree) assert.equal(await pidAlive(pid), false, `pid ${pid} is gone`);
  });

  it("times the grace on the engine's clock: a job that ignores SIGTERM is killed once the clock passes it", async () => {
    const clock = new ManualClock();
    const timed = await openHarness({ clock });
    try {
      const pidsFile = join(timed.dataDir, 'stubborn.pids');
      const job = await startRunning(
        timed.engine,
        { command: join(FIXTURES, 'stubborn-tree.sh'), args: [pidsFile] },
        me,
      );
      await waitForFileText(join(timed.dataDir, 'jobs', job.id, 'stdout'), 'ready');
      const grace = 3_600_000;
      await timed.engine.stop(job.id, me, { graceMs: grace });
      // Its SIGTERM is ignored, and an hour has not passed on the clock: still running.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal((await timed.engine.get(job.id))?.status, 'running');
      clock.advance(grace);
      const done = await timed.engine.waitFor(job.id);
      assert.equal(done.status, 'stopped');
      assert.equal(done.stopForced, true);
      assert.equal(done.exit?.reason, 'stopped by tester: killed by SIGKILL after 1 h grace');
    } finally {
      // A failed assertion above must not leave the stop waiting out its hour (and the file running).
      clock.advance(3_600_000);
      await timed.destroy();
    }
  });

  it('refuses a grace that is not whole milliseconds from 0 to a day, naming graceMs, and records no stop', async () => {
    const job = await startRunning(h.engine, { command: 'sleep', args: ['60'] }, me);
    for (const graceMs of [-1, 1.5, Number.NaN, 24 * 3600 * 1000 + 1]) {
      await assert.rejects(h.engine.stop(job.id, me, { graceMs }), (err: Error) => {
        assert.equal(err.name, 'ValidationError');
        assert.match(
          err.message,
          /^Expected `graceMs` to be an integer of milliseconds from 0 to 86400000, got /,
        );
        return true;
      });
    }
    const still = await h.engine.get(job.id);
    assert.equal(still.status, 'running');
    assert.equal(still.stop, null, 'no stop was recorded');
    await h.engine.stop(job.id, me, { graceMs: 0 });
    assert.equal((await h.engine.waitFor(job.id)).status, 'stopped');
  });

  it('a stop that cannot be recorded for good, or whose force cannot be, never leaves a rejection unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const errors: string[] = [];
    const onError = (err: Error, jobId: string | null) => errors.push(`${jobId}: ${err.message}`);
    h.engine.on('engine:error', onError);
    const { markStopRequested, markStopForced } = h.store;
    try {
      // Decided meanwhile (by another node of a cluster, say): the caller gets the refusal.
      // It ignores SIGTERM (an ignored signal stays ignored across exec): its stop is forced.
      const job = await startRunning(
        h.engine,
        { command: 'sh', args: ['-c', "trap '' TERM; echo ready; exec sleep 60"] },
        me,
      );
      await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
      h.store.markStopRequested = () =>
        Promise.reject(new IllegalTransitionError(job.id, 'succeeded', 'stopped'));
      await assert.rejects(h.engine.stop(job.id, me, { graceMs: 0 }), IllegalTransitionError);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, [], 'no rejection left unhandled');
      const still = await h.engine.get(job.id);
      assert.equal(still.status, 'running');
      assert.equal(still.stop, null, 'no stop on record, and none under way: the next one is carried out');
      h.store.markStopRequested = markStopRequested;

      // The force cannot be recorded: reported, and the end records it all the same.
      h.store.markStopForced = (id: string) =>
        Promise.reject(new IllegalTransitionError(id, 'succeeded', 'stopped'));
      await h.engine.stop(job.id, me, { graceMs: 0 });
      const done = await h.engine.waitFor(job.id);
      assert.equal(done.status, 'stopped');
      assert.equal(done.stopForced, true);
      assert.deepEqual(unhandled, []);
      assert.ok(
        errors.some((e) => e.startsWith(`${job.id}: the forced stop could not be recorded`)),
        errors.join('\n'),
      );
    } finally {
      h.store.markStopRequested = markStopRequested;
      h.store.markStopForced = markStopForced;
      h.engine.off('engine:error', onError);
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a stop asked while another is being recorded waits for it, and is carried out itself when that one fails', async () => {
    const job = await startRunning(h.engine, { command: 'sleep', args: ['60'] }, me);
    const { markStopRequested } = h.store;
    const first = Promise.withResolvers<never>();
    const reached = Promise.withResolvers<void>();
    let calls = 0;
    // The first request's record waits for the test, then fails for good; later ones are recorded.
    h.store.markStopRequested = (...args: Parameters<typeof markStopRequested>) => {
      calls++;
      if (calls > 1) return markStopRequested.apply(h.store, args);
      reached.resolve();
      return first.promise;
    };
    try {
      const a = h.engine.stop(job.id, me, { graceMs: 10_000 });
      const b = h.engine.stop(job.id, { user: 'admin' }, { graceMs: 10_000 });
      // The first is being recorded; one turn of the event loop later the second, whose steps
      // before the supervisor are all in memory and in SQLite, waits on it there.
      await reached.promise;
      await new Promise((resolve) => setImmediate(resolve));
      first.reject(new IllegalTransitionError(job.id, 'succeeded', 'stopped'));
      await assert.rejects(a, IllegalTransitionError);
      const second = await b;
      assert.equal(second.changed, true, 'carried out itself');
      assert.equal(second.job.stop?.by, 'admin');
      assert.equal(calls, 2);
    } finally {
      h.store.markStopRequested = markStopRequested;
    }
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'stopped');
  });

  for (const drained of [true, false]) {
    it(`a stop of a claimed job before its launch cancels it, ${drained ? 'its claim sent back by a drain' : 'its launch told'}: it never runs, nothing made for it is left`, async () => {
      const other = await openHarness();
      try {
        const log = join(other.dataDir, 'ran.log');
        // The claim is made, then held until the test has stopped the job (and begun a drain).
        const gate = holdNextClaim(other.store);
        const job = await other.engine.start({ command: 'sh', args: ['-c', `echo ran >> ${log}`] }, me);
        await gate.claimed;
        // Claimed, its launch not begun: the stop is recorded on the claim, and the launch is told.
        assert.equal((await other.engine.stop(job.id, me)).changed, true);
        assert.equal((await other.engine.stop(job.id, me)).changed, false, 'a second stop changes nothing');
        if (drained) other.engine.drain();
        gate.release();
        const done = await other.engine.waitFor(job.id, AbortSignal.timeout(30_000));
        assert.equal(done.status, 'cancelled');
        assert.equal(done.exit?.reason, 'cancelled by tester before it started');
        assert.equal(await readFile(log, 'utf8').catch(() => ''), '', 'it never ran');
        assert.equal(existsSync(join(other.dataDir, 'jobs', job.id)), false, 'no directory left');
        if (drained) other.engine.undrain();
        // The engine goes on: the next job runs.
        const next = await other.engine.start({ command: 'true' }, me);
        assert.equal((await other.engine.waitFor(next.id, AbortSignal.timeout(30_000))).status, 'succeeded');
      } finally {
        await other.destroy();
      }
    });
  }

  it('a stop during a launch, before its spawn, cancels the job: its directories and cgroups are removed, the stop says it changed it', async () => {
    const other = await openHarness();
    const { create } = Cgroups.prototype;
    try {
      const log = join(other.dataDir, 'ran.log');
      const reached = Promise.withResolvers<string>();
      const gate = Promise.withResolvers<void>();
      // The launch is held after its directories and cgroups are made, before it asks the spawner.
      Cgroups.prototype.create = async function (this: Cgroups, ...args: Parameters<typeof create>) {
        const dirs = await create.apply(this, args);
        reached.resolve(args[0]);
        await gate.promise;
        return dirs;
      };
      const recorded = Promise.withResolvers<void>();
      const { cancelQueued } = other.store;
      other.store.cancelQueued = async (...args: Parameters<typeof cancelQueued>) => {
        const job = await cancelQueued.apply(other.store, args);
        recorded.resolve();
        return job;
      };
      const job = await other.engine.start({ command: 'sh', args: ['-c', `echo ran >> ${log}`] }, me);
      assert.equal(await reached.promise, job.id);
      Cgroups.prototype.create = create;
      const io = other.engine.ioPaths(job.id);
      assert.equal(existsSync(io.dir), true, 'its io directory is made before the spawn');
      const stopping = other.engine.stop(job.id, me);
      await recorded.promise;
      gate.resolve();
      const answer = await stopping;
      assert.deepEqual([answer.job.status, answer.changed], ['cancelled', true]);
      assert.equal(answer.job.exit?.reason, 'cancelled by tester before it started');
      assert.equal(answer.job.stop?.by, 'tester');
      assert.equal(await readFile(log, 'utf8').catch(() => ''), '', 'it never ran');
      assert.equal(existsSync(join(other.dataDir, 'jobs', job.id)), false, 'its directory is removed');
      assert.equal(existsSync(io.dir), false, 'its io directory is removed');
      assert.deepEqual(new Cgroups().existing(job.id), [], 'its cgroups are removed');
      // A second stop changes nothing.
      assert.equal((await other.engine.stop(job.id, me)).changed, false);
    } finally {
      Cgroups.prototype.create = create;
      await other.destroy();
    }
  });

  it('a stop during a launch that already spawned is carried out once the start is recorded: stopped, the stop says it changed it', async () => {
    const other = await openHarness();
    try {
      const { markStarted, cancelQueued } = other.store;
      const spawned = Promise.withResolvers<void>();
      const gate = Promise.withResolvers<void>();
      other.store.markStarted = async (...args: Parameters<typeof markStarted>) => {
        spawned.resolve();
        await gate.promise;
        return markStarted.apply(other.store, args);
      };
      const recorded = Promise.withResolvers<void>();
      other.store.cancelQueued = async (...args: Parameters<typeof cancelQueued>) => {
        const job = await cancelQueued.apply(other.store, args);
        recorded.resolve();
        return job;
      };
      const job = await other.engine.start({ command: 'sleep', args: ['30'] }, me);
      await spawned.promise;
      other.store.markStarted = markStarted;
      const stopping = other.engine.stop(job.id, me, { graceMs: 0 });
      await recorded.promise;
      gate.resolve();
      assert.equal((await stopping).changed, true);
      const done = await other.engine.waitFor(job.id, AbortSignal.timeout(30_000));
      assert.equal(done.status, 'stopped');
      assert.equal(done.stop?.by, 'tester');
    } finally {
      await other.destroy();
    }
  });

  it('a job whose start cannot be recorded is stopped and recorded failed, never retried: its command had begun', async () => {
    const log = join(h.dataDir, `ran-${Date.now()}.log`);
    const { markStarted } = h.store;
    h.store.markStarted = () => Promise.reject(new IllegalTransitionError('x', 'queued', 'running'));
    try {
      const job = await h.engine.start(
        { command: 'sh', args: ['-c', `echo ran >> ${log}; exec sleep 60`], retry: { attempts: 3 } },
        me,
      );
      const done = await h.engine.waitFor(job.id);
      assert.equal(done.status, 'failed');
      assert.match(
        done.exit?.reason ?? '',
        /^failed to start: its start could not be recorded, so it was stopped: /,
      );
      assert.equal(done.retriedAs, null, 'not retried: the command had begun');
    } finally {
      h.store.markStarted = markStarted;
    }
    // It ran at most once (it may have been stopped before its first line).
    const ran = await readFile(log, 'utf8').catch(() => '');
    assert.ok(ran.split('\n').filter(Boolean).length <= 1, ran);
  });

  it('a graceful stop is not forced; a stop on a finished job changes nothing and says so', async () => {
    // Started, so that its directory (watched below) exists: a submission answers before that.
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', 'echo ready; exec sleep 60'] },
      me,
    );
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    await h.engine.stop(job.id, me);
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'stopped');
    assert.equal(done.stopForced, false);
    assert.equal(done.exit?.signal, 'SIGTERM');
    const again = await h.engine.stop(job.id, me);
    assert.equal(again.changed, false);
    assert.equal(again.job.status, 'stopped');
  });

  it('ends a job past its timeout as timed_out', async () => {
    const job = await h.engine.start({ command: 'sleep', args: ['60'], timeoutMs: 300 }, me);
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'timed_out');
    assert.match(done.exit?.reason ?? '', /^timed out after 300 ms: /);
  });

  it('retries a run that timed out, as its retry policy asks, each attempt with its own timeout', async () => {
    const job = await h.engine.start(
      {
        command: 'sleep',
        args: ['60'],
        timeoutMs: 200,
        retry: { attempts: 2, backoff: { initialMs: 0, factor: 1, maxMs: 0 } },
      },
      me,
    );
    const first = await h.engine.waitFor(job.id);
    assert.equal(first.status, 'timed_out');
    assert.ok(first.retriedAs, 'a timed-out run has a next attempt');
    const second = await h.engine.waitFor(first.retriedAs);
    assert.deepEqual([second.status, second.attempt, second.retryOf], ['timed_out', 2, job.id]);
    assert.equal(second.retriedAs, null, 'no attempt after the last');
  });

  it("does not retry a timed-out run that a user stopped during its timeout's grace", async () => {
    const graced = await openHarness({ defaultGraceMs: 1000 });
    try {
      const job = await graced.engine.start(GRACED_TIMEOUT, me);
      const [stopping] = (await once(graced.engine, 'job:stopping')) as [Job];
      assert.equal(stopping.id, job.id, 'the timeout stops it; it ignores SIGTERM for its grace');
      const asked = await graced.engine.stop(job.id, me, { graceMs: 0 });
      assert.equal(asked.changed, true, 'the stop is taken: no retry will follow');
      const ended = await graced.engine.waitFor(job.id);
      assert.equal(ended.status, 'timed_out');
      assert.match(ended.exit?.reason ?? '', /; stopped by tester meanwhile$/);
      assert.equal(ended.retriedAs, null);
    } finally {
      await graced.destroy();
    }
  });

  it("does not retry it either when the server restarts during the timeout's grace", async () => {
    // The user's stop is in the store, not only in the memory of the server that took it: the
    // next server, which adopts the job and finishes its stop, does not retry it.
    const first = await openHarness({ defaultGraceMs: 3000 });
    const job = await first.engine.start(GRACED_TIMEOUT, me);
    await once(first.engine, 'job:stopping');
    const asked = await first.engine.stop(job.id, me, { graceMs: 0 });
    assert.deepEqual(
      [asked.changed, asked.job.stop?.alsoBy],
      [true, 'tester'],
      'recorded beside the timeout',
    );
    for (const user of ['other', 'tester']) {
      const again = await first.engine.stop(job.id, { user }, { graceMs: 0 });
      assert.deepEqual(
        [again.changed, again.job.stop?.alsoBy],
        [false, 'tester'],
        'a later stop changes nothing',
      );
    }
    await first.close();
    const second = await first.reopen();
    try {
      assert.equal((await second.engine.get(job.id)).status, 'running', 'adopted within its grace');
      const ended = await second.engine.waitFor(job.id);
      assert.equal(ended.status, 'timed_out');
      assert.match(ended.exit?.reason ?? '', /; stopped by tester meanwhile$/);
      assert.equal(ended.retriedAs, null);
      const { jobs } = await second.engine.list({ limit: 10 });
      assert.deepEqual(
        jobs.map((j) => j.id),
        [job.id],
        'no next attempt',
      );
    } finally {
      await second.destroy();
    }
  });

  it("keeps a user's stop during the timeout's grace that the store could not take (a full disk), and records it with the end", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-stopfull-'));
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    let refused = 0;
    // The timeout's stop is recorded; the user's, a moment later, finds the disk full.
    const full = new Proxy(store, {
      get(real, key) {
        if (key === 'markStopRequested') {
          return async (id: string, stop: StopRequest) => {
            if (stop.by === TIMEOUT_STOPPER) return real.markStopRequested(id, stop);
            refused++;
            throw new InsufficientStorageError('The disk is full');
          };
        }
        const value = Reflect.get(real, key, real) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
      },
    });
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store: full, defaultGraceMs: 1000 });
    const errors: Error[] = [];
    engine.on('engine:error', (err) => errors.push(err));
    try {
      const job = await engine.start(GRACED_TIMEOUT, me);
      await once(engine, 'job:stopping');
      const asked = await engine.stop(job.id, me, { graceMs: 0 });
      assert.deepEqual([asked.changed, asked.job.stop?.alsoBy, refused], [true, 'tester', 1]);
      assert.match(
        errors[0]?.message ?? '',
        /^the stop could not be recorded; it is recorded with the job's end/,
      );
      const ended = await engine.waitFor(job.id);
      assert.equal(ended.status, 'timed_out');
      assert.match(ended.exit?.reason ?? '', /; stopped by tester meanwhile$/);
      assert.deepEqual(
        [ended.retriedAs, ended.stop?.by, ended.stop?.alsoBy],
        [null, TIMEOUT_STOPPER, 'tester'],
      );
    } finally {
      await engine.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("waits, to record a job's end, for a user's stop still being recorded, and carries it when the store refuses it", {
    skip: new Cgroups().mode === 'none' && 'the moment its end is being recorded is seen by its cgroup going',
  }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-stoplate-'));
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    // The user's stop, asked during the timeout's grace, is answered only once the job has ended
    // and its cgroup is gone (the end is being recorded then), and refused (a full disk).
    let cgroup: string | undefined;
    const late = new Proxy(store, {
      get(real, key) {
        if (key === 'markStopRequested') {
          return async (id: string, stop: StopRequest) => {
            if (stop.by === TIMEOUT_STOPPER) return real.markStopRequested(id, stop);
            while (cgroup === undefined || existsSync(cgroup)) await new Promise((r) => setTimeout(r, 10));
            throw new InsufficientStorageError('The disk is full');
          };
        }
        const value = Reflect.get(real, key, real) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
      },
    });
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store: late, defaultGraceMs: 300 });
    engine.on('engine:error', () => {});
    try {
      const job = await engine.start(GRACED_TIMEOUT, me);
      const [stopping] = (await once(engine, 'job:stopping')) as [Job];
      cgroup = stopping.process?.cgroups[0];
      const asked = await engine.stop(job.id, me, { graceMs: 0 });
      assert.deepEqual([asked.changed, asked.job.stop?.alsoBy], [true, 'tester']);
      const ended = await engine.waitFor(job.id);
      assert.equal(ended.status, 'timed_out');
      assert.match(ended.exit?.reason ?? '', /; stopped by tester meanwhile$/);
      assert.deepEqual([ended.retriedAs, ended.stop?.alsoBy], [null, 'tester']);
    } finally {
      await engine.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('never retries a job stopped while it was being claimed, whose start then failed', {
    skip: process.getuid?.() === 0 ? false : 'making a directory of another account takes root',
  }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-claimstop-'));
    const ioDir = `${dataDir}-io`;
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    // The stop comes while the job is claimed: only recorded then (it is being started).
    const stopping = new Proxy(store, {
      get(real, key) {
        if (key === 'claimReady') {
          return async (...args: Parameters<SqliteJobStore['claimReady']>) => {
            const claimed = await real.claimReady(...args);
            for (const job of claimed) {
              await real.cancelQueued(
                job.id,
                { at: new Date(), by: 'tester', graceMs: 0 },
                'cancelled by tester',
              );
            }
            return claimed;
          };
        }
        const value = Reflect.get(real, key, real) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
      },
    });
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store: stopping, ioDir });
    try {
      // Its start fails: the directory of the io directories was taken by another account.
      await rm(ioDir, { recursive: true });
      await mkdir(ioDir, { mode: 0o777 });
      await chown(ioDir, 65534, 65534);
      const job = await engine.start(
        { command: 'true', retry: { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } } },
        me,
      );
      const ended = await engine.waitFor(job.id);
      assert.equal(ended.status, 'failed');
      assert.match(ended.exit?.reason ?? '', /^failed to start: .*removed or replaced while the server ran/);
      assert.equal(ended.stop?.by, 'tester', 'the stop is kept on record');
      assert.equal(ended.retriedAs, null, 'not retried: someone asked it to stop');
    } finally {
      await engine.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(ioDir, { recursive: true, force: true });
    }
  });

  it('kills what a job left behind when its main process exits', async () => {
    const pidFile = join(h.dataDir, 'orphan.pid');
    const job = await h.engine.start({ command: 'sh', args: ['-c', `sleep 60 & echo $! > ${pidFile}`] }, me);
    const orphan = Number((await waitForFileText(pidFile, '\n')).trim());
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(await pidAlive(orphan), false);
  });
});
