import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DuplicateJobError, QueueFullError } from '../../src/core/errors.ts';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { type Harness, openHarness, readAll, startRunning } from '../helpers/engine-harness.ts';
import { failingOnce } from '../helpers/failing-once.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { waitForFileText } from '../helpers/wait.ts';

const caller = { user: 'tester' };
let h: Harness;
let scratch: string;

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'jw-queues-'));
});
afterEach(async () => {
  await h?.destroy();
  await rm(scratch, { recursive: true, force: true });
});

/** Resolves with the job once the engine reports it finished. */
function finished(engine: Harness['engine'], id: string): Promise<Job> {
  return engine.waitFor(id);
}

/** A job that runs until `gate` exists (the job polls; the test only creates the file). */
const gated = (gate: string, extra: object = {}) => ({
  command: 'sh',
  args: ['-c', `while [ ! -e '${gate}' ]; do sleep 0.01; done; echo done`],
  ...extra,
});

describe('queues: concurrency and order', () => {
  it('a queue with limit 3 never runs more than 3 of 10, in priority-then-arrival order', async () => {
    h = await openHarness();
    const { engine } = h;
    await engine.setQueue('three', { concurrency: 3, paused: true });
    const gate = join(scratch, 'gate');
    const priorities = [0, 5, 0, 10, 5, 0, -1, 10, 0, 5];
    const jobs: Job[] = [];
    for (const priority of priorities) {
      jobs.push(await engine.start(gated(gate, { queue: 'three', priority }), caller));
    }
    assert.ok(jobs.every((j) => j.status === 'queued'));
    const startOrder: string[] = [];
    let active = 0;
    let most = 0;
    engine.on('job:started', (job) => {
      if (job.spec.queue !== 'three') return;
      startOrder.push(job.id);
      active++;
      most = Math.max(most, active);
    });
    engine.on('job:finished', (job) => {
      if (job.spec.queue === 'three') active--;
    });
    await engine.setQueue('three', { paused: false });
    await engine.dispatch();
    assert.equal((await engine.queue('three')).running, 3, 'exactly three hold a slot');
    assert.equal(startOrder.length, 3);
    await writeFile(gate, '');
    for (const job of jobs) assert.equal((await finished(engine, job.id)).status, 'succeeded');
    assert.ok(most <= 3, `at most 3 ran at once, saw ${most}`);
    const expected = jobs
      .map((job, i) => ({ id: job.id, priority: priorities[i]!, i }))
      .sort((a, b) => b.priority - a.priority || a.i - b.i)
      .map((j) => j.id);
    assert.deepEqual(startOrder, expected);
  });

  it("a node's maxRunning caps every queue together; more wait and start as slots free", async () => {
    h = await openHarness({ maxRunning: 2 });
    const { engine } = h;
    const gate = join(scratch, 'gate');
    let active = 0;
    let most = 0;
    engine.on('job:started', () => {
      most = Math.max(most, ++active);
    });
    engine.on('job:finished', () => active--);
    const jobs = [];
    for (const queue of ['a', 'b', 'a', 'b', 'default'])
      jobs.push(await engine.start(gated(gate, { queue }), caller));
    await engine.dispatch();
    // Which two start first is the dispatcher's choice (queue by queue); how many is not.
    assert.deepEqual((await Promise.all(jobs.map((j) => engine.get(j.id)))).map((j) => j.status).sort(), [
      'queued',
      'queued',
      'queued',
      'running',
      'running',
    ]);
    assert.equal(engine.drainState.running, 2);
    await writeFile(gate, '');
    for (const job of jobs) assert.equal((await finished(engine, job.id)).status, 'succeeded');
    assert.ok(most <= 2, `at most 2 at once, saw ${most}`);
  });

  it('a full queue refuses with QUEUE_FULL and the refused submission leaves nothing behind', async () => {
    h = await openHarness();
    const { engine } = h;
    await engine.setQueue('small', { maxWaiting: 2, paused: true });
    await engine.start({ command: 'true', queue: 'small' }, caller);
    await engine.start({ command: 'true', queue: 'small' }, caller);
    const before = await engine.list({ limit: 100 });
    await assert.rejects(
      engine.start({ command: 'true', queue: 'small', name: 'refused' }, caller),
      (err) => {
        assert.ok(err instanceof QueueFullError);
        assert.equal(err.code, 'QUEUE_FULL');
        assert.match(err.message, /small.*2/);
        return true;
      },
    );
    const afterRefusal = await engine.list({ limit: 100 });
    assert.deepEqual(
      afterRefusal.jobs.map((j) => j.id),
      before.jobs.map((j) => j.id),
    );
    assert.deepEqual(
      await readdir(join(h.dataDir, 'jobs')),
      [],
      'no job directory for queued or refused jobs',
    );
    assert.equal((await engine.queue('small')).waiting, 2);
  });

  it('a stop that races the start of its job is never lost: every job ends cancelled or stopped', async () => {
    h = await openHarness();
    const { engine } = h;
    await engine.setQueue('race', { paused: true });
    const jobs: Job[] = [];
    for (let i = 0; i < 12; i++) {
      jobs.push(await engine.start({ command: 'sleep', args: ['600'], queue: 'race' }, caller));
    }
    // One stop after another, from the moment the dispatcher claims these jobs: some land before
    // their launch, some while it spawns them, some after.
    const claimed = new Promise<void>((resolve) => engine.once('job:started', () => resolve()));
    const resumed = engine.setQueue('race', { paused: false });
    await claimed;
    const stops = [];
    for (const job of jobs) stops.push(await engine.stop(job.id, caller, { graceMs: 5000 }));
    await resumed;
    for (const [i, stop] of stops.entries()) {
      assert.equal(stop.changed, true, `the stop of job ${i} was recorded`);
      const ended = await finished(engine, jobs[i]!.id);
      assert.ok(['cancelled', 'stopped'].includes(ended.status), `job ${i} ended ${ended.status}`);
    }
  });

  it('a stopped queued job is cancelled at once and stays in history', async () => {
    h = await openHarness();
    const { engine } = h;
    await engine.setQueue('held', { paused: true });
    const job = await engine.start({ command: 'true', queue: 'held' }, caller);
    const { job: cancelled, changed } = await engine.stop(job.id, { user: 'bob' });
    assert.equal(changed, true);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.exit?.reason, 'cancelled by bob before it started');
    assert.equal(cancelled.stop?.by, 'bob');
    await engine.setQueue('held', { paused: false });
    await engine.dispatch();
    assert.equal((await engine.get(job.id)).status, 'cancelled', 'a resumed queue does not start it');
    const again = await engine.stop(job.id, caller);
    assert.equal(again.changed, false);
  });
});

describe('queues: dependencies', () => {
  it('a chain A → B → C runs in order', async () => {
    h = await openHarness();
    const { engine } = h;
    const gate = join(scratch, 'gate');
    const log = join(scratch, 'order');
    const a = await engine.start(
      { command: 'sh', args: ['-c', `while [ ! -e '${gate}' ]; do sleep 0.01; done; echo A >> '${log}'`] },
      caller,
    );
    const b = await engine.start(
      { command: 'sh', args: ['-c', `echo B >> '${log}'`], after: [a.id] },
      caller,
    );
    const c = await engine.start(
      { command: 'sh', args: ['-c', `echo C >> '${log}'`], after: [b.id] },
      caller,
    );
    assert.equal(b.status, 'queued');
    assert.equal(b.hold, 'after');
    assert.equal(c.hold, 'after');
    await writeFile(gate, '');
    assert.equal((await finished(engine, c.id)).status, 'succeeded');
    assert.equal(await readFile(log, 'utf8'), 'A\nB\nC\n');
  });

  it('when A fails, B and C are cancelled with reasons naming the job they waited for', async () => {
    h = await openHarness();
    const { engine } = h;
    const gate = join(scratch, 'gate');
    const a = await engine.start(
      { command: 'sh', args: ['-c', `while [ ! -e '${gate}' ]; do sleep 0.01; done; exit 3`] },
      caller,
    );
    const b = await engine.start({ command: 'true', after: [a.id] }, caller);
    const c = await engine.start({ command: 'true', after: [b.id] }, caller);
    await writeFile(gate, '');
    const cEnd = await finished(engine, c.id);
    const bEnd = await engine.get(b.id);
    assert.equal(bEnd.status, 'cancelled');
    assert.equal(bEnd.exit?.reason, `dependency ${a.id} ended failed (exited with code 3)`);
    assert.equal(cEnd.status, 'cancelled');
    assert.match(cEnd.exit!.reason, new RegExp(`^dependency ${b.id} ended cancelled`));
    assert.equal(bEnd.startedAt, null, 'it never ran');
    // A job submitted after a dependency that already failed is recorded, and cancelled at once.
    const late = await engine.start({ command: 'true', after: [a.id] }, caller);
    assert.equal(late.status, 'cancelled');
  });

  it('settles the dependents of a job that ended even when the first try failed (the store busy a moment)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-engine-'));
    const real = await SqliteJobStore.open(join(dir, 'jobworker.db'));
    // The real store, whose first settling fails as a locked database would.
    const { object: store, calls } = failingOnce(real, 'settleDependents', new Error('database is locked'));
    const engine = await JobEngine.open({ node: 'test-node', dataDir: dir, store });
    try {
      const gate = join(scratch, 'settle-gate');
      const a = await engine.start(
        { command: 'sh', args: ['-c', `while [ ! -e '${gate}' ]; do sleep 0.01; done; exit 3`] },
        caller,
      );
      const b = await engine.start({ command: 'true', after: [a.id] }, caller);
      await writeFile(gate, '');
      const bEnd = await finished(engine, b.id);
      assert.equal(bEnd.status, 'cancelled');
      assert.equal(bEnd.exit?.reason, `dependency ${a.id} ended failed (exited with code 3)`);
      assert.equal(calls(), 2, 'tried again once the first failed');
    } finally {
      await engine.close();
      await real.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects an unknown or repeated dependency, creating nothing', async () => {
    h = await openHarness();
    const { engine } = h;
    const a = await engine.start({ command: 'true' }, caller);
    await assert.rejects(
      engine.start({ command: 'true', after: [a.id, '0190f3a2-7c4e-7d1a-9b2c-3f4e5a6b7c8d'] }, caller),
      { code: 'VALIDATION_FAILED', field: 'after[1]' },
    );
    await assert.rejects(engine.start({ command: 'true', after: [a.id, a.id] }, caller), {
      code: 'VALIDATION_FAILED',
      field: 'after[1]',
    });
    await assert.rejects(engine.start({ command: 'true', after: ['nope'] }, caller), {
      code: 'VALIDATION_FAILED',
      field: 'after[0]',
    });
    assert.equal((await engine.list({ limit: 10 })).jobs.length, 1);
    await finished(engine, a.id);
  });
});

describe('queues: retries, delays and de-duplication (on a manual clock)', () => {
  it('a job failing twice then succeeding ends succeeded after 3 attempts at the backoff times', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    h = await openHarness({ clock });
    const { engine } = h;
    const counter = join(scratch, 'count');
    const script = `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${counter}'; echo "attempt $n"; [ $n -ge 3 ]`;
    const first = await engine.start(
      {
        command: 'sh',
        args: ['-c', script],
        retry: { attempts: 3, backoff: { initialMs: 1000, factor: 3, maxMs: 60_000 } },
      },
      caller,
    );
    const attempts: Job[] = [];
    let current = first;
    for (let k = 1; ; k++) {
      const ended = await finished(engine, current.id);
      attempts.push(ended);
      if (ended.retriedAs === null) break;
      await engine.dispatch(); // the pass that arms the timer for the next attempt
      const next = await engine.get(ended.retriedAs);
      assert.equal(next.status, 'queued');
      assert.equal(next.attempt, k + 1);
      assert.equal(next.retryOf, ended.id);
      const wait = k === 1 ? 1000 : 3000;
      assert.equal(next.runAt?.getTime(), clock.now().getTime() + wait, `backoff before attempt ${k + 1}`);
      clock.advance(wait - 1);
      await engine.dispatch();
      assert.equal((await engine.get(next.id)).status, 'queued', 'not a millisecond early');
      clock.advance(1);
      current = next;
    }
    assert.deepEqual(
      attempts.map((j) => j.status),
      ['failed', 'failed', 'succeeded'],
    );
    assert.match(attempts[0]!.exit!.reason, /^exited with code 1; attempt 1 of 3, retried as /);
    for (const [i, job] of attempts.entries()) {
      assert.equal((await readAll(engine, job.id, 'stdout')).toString(), `attempt ${i + 1}\n`);
    }
  });

  it('a stopped run is never retried', async () => {
    h = await openHarness();
    const { engine } = h;
    const job = await engine.start(
      { command: 'sh', args: ['-c', 'echo up; exec sleep 600'], retry: { attempts: 5 } },
      caller,
    );
    await engine.untilStarted(job.id);
    await engine.stop(job.id, caller, { graceMs: 1000 });
    const ended = await finished(engine, job.id);
    assert.equal(ended.status, 'stopped');
    assert.equal(ended.retriedAs, null);
  });

  it('a delayed job starts when its time comes, not before', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    h = await openHarness({ clock });
    const { engine } = h;
    const job = await engine.start({ command: 'true', delayMs: 5 * 60_000 }, caller);
    assert.equal(job.status, 'queued');
    assert.equal(job.hold, 'delay');
    assert.equal(job.runAt?.toISOString(), '2026-12-02T10:05:00.000Z');
    // The submit alone set the timer: nothing else here asks for a dispatch pass.
    clock.advance(5 * 60_000 - 1);
    assert.equal((await engine.get(job.id)).status, 'queued');
    clock.advance(1);
    assert.equal((await finished(engine, job.id)).status, 'succeeded');
    await assert.rejects(
      engine.start({ command: 'true', delayMs: 1, runAt: '2026-12-02T11:00:00Z' }, caller),
      {
        field: 'delayMs',
      },
    );
    await assert.rejects(engine.start({ command: 'true', runAt: 'tomorrow' }, caller), { field: 'runAt' });
  });

  it('20 concurrent submits with one dedupe key create exactly one job', async () => {
    h = await openHarness();
    const { engine } = h;
    await engine.setQueue('dedupe', { paused: true });
    const spec = { command: 'true', queue: 'dedupe', dedupeKey: 'nightly' };
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => engine.start(spec, caller)));
    const created = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(created.length, 1);
    assert.equal(refused.length, 19);
    const id = (created[0] as PromiseFulfilledResult<Job>).value.id;
    for (const r of refused) {
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof DuplicateJobError);
      assert.equal(err.job.id, id);
    }
    const returned = await engine.submit({ ...spec, onDuplicate: 'return' }, caller);
    assert.deepEqual([returned.created, returned.job.id], [false, id]);
    assert.equal((await engine.list({ limit: 100 })).jobs.length, 1);
    // Once it has ended, the key is free again.
    await engine.setQueue('dedupe', { paused: false });
    await finished(engine, id);
    assert.notEqual((await engine.start(spec, caller)).id, id);
  });
});

describe('queues: pause, resume and drain', () => {
  it("a paused job's CPU time does not advance; after resume it finishes normally", async () => {
    h = await openHarness();
    const { engine } = h;
    const go = join(scratch, 'go');
    // A busy loop: it burns CPU until the file exists.
    const job = await startRunning(
      engine,
      { command: 'sh', args: ['-c', `while [ ! -e '${go}' ]; do :; done; echo finished`] },
      caller,
    );
    await cpuTicksReach(job, 5);
    const paused = await engine.pause(job.id);
    assert.equal(paused.status, 'paused');
    assert.ok(paused.pausedAt);
    await assert.rejects(engine.pause(job.id), { code: 'ILLEGAL_TRANSITION' });
    // Other work, so that time passes and the freeze has surely settled, measured by events.
    await burnCpu(engine);
    const frozenAt = await cpuTicks(job);
    await burnCpu(engine);
    assert.equal(await cpuTicks(job), frozenAt, 'no CPU time while paused');
    assert.equal((await engine.list({ status: ['paused'], limit: 10 })).jobs[0]?.id, job.id);
    const resumed = await engine.resume(job.id);
    assert.equal(resumed.status, 'running');
    assert.equal(resumed.pausedAt, null);
    await cpuTicksReach(job, frozenAt + 2);
    await writeFile(go, '');
    const ended = await finished(engine, job.id);
    assert.equal(ended.status, 'succeeded');
    assert.equal((await readAll(engine, job.id, 'stdout')).toString(), 'finished\n');
  });

  it('a stop of a paused job thaws it, and it ends stopped without needing the kill', async () => {
    h = await openHarness();
    const { engine } = h;
    const job = await startRunning(
      engine,
      { command: 'sh', args: ['-c', 'echo ready; exec sleep 600'] },
      caller,
    );
    // Paused once the command runs, so that what is frozen and thawed is the command itself.
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    await engine.pause(job.id);
    await engine.stop(job.id, caller, { graceMs: 20_000 });
    const ended = await finished(engine, job.id);
    assert.equal(ended.status, 'stopped');
    assert.equal(ended.stopForced, false, 'SIGTERM reached it: it was thawed');
  });

  it('drain stops dispatching and reports when every running job has finished; undrain resumes', async () => {
    h = await openHarness();
    const { engine } = h;
    const gate = join(scratch, 'gate');
    const running = await startRunning(engine, gated(gate), caller);
    assert.deepEqual(engine.drain(), { draining: true, running: 1 });
    const waiting = await engine.start({ command: 'true' }, caller);
    assert.equal(waiting.status, 'queued', 'nothing new starts while draining');
    const drained = engine.drained();
    await writeFile(gate, '');
    assert.deepEqual(await drained, { draining: true, running: 0 });
    assert.equal((await engine.get(running.id)).status, 'succeeded');
    assert.equal((await engine.get(waiting.id)).status, 'queued');
    engine.undrain();
    assert.equal((await finished(engine, waiting.id)).status, 'succeeded');
  });
});

/** utime + stime of every process in the job's process group, from /proc. */
async function cpuTicks(job: Job): Promise<number> {
  let total = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'latin1').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== job.process!.pid) continue; // field 5: the process group
    total += Number(fields[11]) + Number(fields[12]); // fields 14 and 15
  }
  return total;
}

/** Waits, by running short jobs one after another, until the job has used `ticks` of CPU. */
async function cpuTicksReach(job: Job, ticks: number): Promise<void> {
  for (let i = 0; i < 2000 && (await cpuTicks(job)) < ticks; i++) await burnCpu(h.engine);
  assert.ok((await cpuTicks(job)) >= ticks, `the job used ${ticks} ticks of CPU`);
}

/** Runs a short CPU-bound job to its end: time passes, measured by an event rather than a sleep. */
async function burnCpu(engine: Harness['engine']): Promise<void> {
  const job = await engine.start(
    { command: 'sh', args: ['-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'] },
    caller,
  );
  await engine.waitFor(job.id);
}
