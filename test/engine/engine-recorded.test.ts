import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NotFoundError } from '../../src/core/errors.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';

const me = { user: 'tester' };

describe('engine: a job as recorded, without the live figures of a running one', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('getRecorded gives the record of a running job; get adds the output sizes read from its files', async () => {
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', 'printf hello; exec sleep 60'] },
      me,
    );
    assert.equal(job.status, 'running');
    // Its first bytes, followed to their arrival.
    const follow = h.engine.follow(job.id, { selector: 'stdout', cursor: 0 });
    const first = await follow.next();
    assert.equal(first.done, false);
    await follow.return(undefined);
    const live = await h.engine.get(job.id);
    assert.equal(live.outputBytes.stdout, 5, 'get reads the size of what it wrote');
    const recorded = await h.engine.getRecorded(job.id);
    assert.equal(recorded.status, 'running');
    assert.equal(recorded.outputBytes.stdout, 0, 'the record holds sizes only once the job ended');
    assert.deepEqual({ ...recorded, outputBytes: live.outputBytes, usage: live.usage }, live);
    await h.engine.stop(job.id, me, { graceMs: 0 });
    const ended = await h.engine.waitFor(job.id);
    assert.deepEqual(await h.engine.getRecorded(job.id), ended, 'a finished job: the record is all of it');
    assert.deepEqual(await h.engine.get(job.id), ended);
  });

  it('refuses an unknown id and one that is not an id, as get does', async () => {
    for (const id of ['0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee', 'not-an-id']) {
      await assert.rejects(h.engine.getRecorded(id), NotFoundError);
      await assert.rejects(h.engine.get(id), NotFoundError);
    }
  });

  it('a follow and a wait of a running job read no live figures of it', async (t) => {
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', 'printf one; exec sleep 60'] },
      me,
    );
    // `get` is the lookup that reads a running job's live figures.
    const gets = t.mock.method(h.engine, 'get');
    try {
      const follow = h.engine.follow(job.id, { selector: 'stdout', cursor: 0 });
      const first = await follow.next();
      assert.equal(first.done, false);
      const waited = h.engine.waitFor(job.id);
      await h.engine.stop(job.id, me, { graceMs: 0 });
      const ended = await waited;
      assert.equal(ended.status, 'stopped');
      let end: unknown;
      for await (const event of follow) if (event.type === 'end') end = event.job;
      assert.deepEqual(end, ended);
      assert.equal(gets.mock.callCount(), 0, 'neither the follow nor the wait looked up the live job');
    } finally {
      gets.mock.restore();
    }
  });

  it("viewEnd checks a cursor against a view's end, the same for many at once", async () => {
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', 'printf hello; exec sleep 60'] },
      me,
    );
    const follow = h.engine.follow(job.id, { selector: 'stdout', cursor: 0 });
    await follow.next();
    await follow.return(undefined);
    // Each check reads through the monitor, and those of one moment share one read of the files.
    const original = OutputMonitor.prototype.read;
    const reads = new Set<Promise<unknown>>();
    let calls = 0;
    const limits = new Set<number>();
    OutputMonitor.prototype.read = function (this: OutputMonitor, ...args) {
      calls++;
      limits.add(args[2].limitBytes);
      const read = original.apply(this, args);
      reads.add(read);
      return read;
    };
    let ends: number[];
    try {
      ends = await Promise.all(Array.from({ length: 50 }, () => h.engine.viewEnd(job.id, 'stdout', 0)));
    } finally {
      OutputMonitor.prototype.read = original;
    }
    assert.deepEqual(new Set(ends), new Set([5]));
    assert.equal(calls, 50);
    assert.equal(reads.size, 1, 'fifty checks of the same view and cursor, one read of the files');
    assert.deepEqual([...limits], [1], 'a check for no follow reads a byte');
    assert.equal(await h.engine.viewEnd(job.id, 'stdout', 5), 5, 'its end is a cursor');
    // A follow opened after the check takes the check's read as its first one.
    const seen: Promise<unknown>[] = [];
    OutputMonitor.prototype.read = function (this: OutputMonitor, ...args) {
      const read = original.apply(this, args);
      seen.push(read);
      return read;
    };
    try {
      await h.engine.viewEnd(job.id, 'stdout', 0, { follow: true });
      const follower = h.engine.follow(job.id, { selector: 'stdout', cursor: 0 });
      const page = await follower.next();
      await follower.return(undefined);
      assert.equal(page.done, false);
    } finally {
      OutputMonitor.prototype.read = original;
    }
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1], "the follower's first read is the check's");
    assert.equal(await h.engine.viewEnd(job.id, 'stderr', 0), 0);
    const past = await Promise.allSettled(
      Array.from({ length: 20 }, () => h.engine.viewEnd(job.id, 'stdout', 6)),
    );
    for (const outcome of past) {
      assert.equal(outcome.status, 'rejected');
      assert.equal((outcome.reason as { code?: string }).code, 'BAD_CURSOR');
    }
    await assert.rejects(h.engine.viewEnd('0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee', 'all', 0), NotFoundError);
    await h.engine.stop(job.id, me, { graceMs: 0 });
    await h.engine.waitFor(job.id);
    assert.equal(await h.engine.viewEnd(job.id, 'all', 0), 5, 'a finished job, read from its files');
  });

  it('a wait of a queued job still ends with its start and its end', async () => {
    await h.engine.setQueue('held', { paused: true });
    const queued = await h.engine.start({ command: 'true', queue: 'held' }, me);
    assert.equal(queued.status, 'queued');
    const started = h.engine.untilStarted(queued.id);
    const waited = h.engine.waitFor(queued.id);
    await h.engine.setQueue('held', { paused: false });
    const job = await started;
    assert.notEqual(job.status, 'queued');
    assert.equal((await waited).status, 'succeeded');
  });
});
