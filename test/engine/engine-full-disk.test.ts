import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClockTimer } from '../../src/core/clock.ts';
import type { Job } from '../../src/core/job.ts';
import { WRITE_RETRY_FIRST_MS } from '../../src/engine/until-written.ts';
import { retentionSlack } from '../../src/output/retention.ts';
import { type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { makeFifo, mountSmallDisk, type SmallDisk, whenWrapperTriesToRecord } from '../helpers/small-disk.ts';
import { waitForFileText } from '../helpers/wait.ts';

const me = { user: 'tester' };

/** A manual clock that tells each timer set on it (`pending` counts those neither fired nor cleared). */
class WatchedClock extends ManualClock {
  readonly timers = new EventEmitter<{ set: [ms: number] }>();
  override setTimer(fn: () => void, ms: number): ClockTimer {
    const timer = super.setTimer(fn, ms);
    this.timers.emit('set', ms);
    return timer;
  }
}

describe('defect 15: the engine on a full disk', () => {
  let disk: SmallDisk;
  let scratch: string;
  let h: Harness;
  const clock = new WatchedClock();
  before(async () => {
    disk = await mountSmallDisk('4m');
    scratch = await mkdtemp(join(tmpdir(), 'jw-engine-full-'));
    const dataDir = join(disk.dir, 'data');
    await mkdir(dataDir);
    h = await openHarness({ clock }, dataDir);
  });
  after(async () => {
    await disk.free();
    await h.destroy();
    await disk.destroy();
    await rm(scratch, { recursive: true, force: true });
  });

  it('defect 15: an end that cannot be recorded is tried again with a doubling backoff on the engine clock, and recorded once space returns', async () => {
    const fifo = join(scratch, 'release');
    await makeFifo(fifo);
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', `echo ready; read line < ${fifo}`] },
      me,
    );
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready\n');
    // Indexed while there is room: below, only the store is full.
    await indexedBy(h, job);

    // Room for the wrapper's exit record and nothing after it: the end is known, the store full.
    await disk.fill(1);
    const reported = once(h.engine, 'engine:error');
    const firstWait = once(clock.timers, 'set');
    await writeFile(fifo, 'go\n');
    const [err, jobId] = (await reported) as [Error, string];
    assert.equal(jobId, job.id);
    assert.match(err.message, /the end of the job could not be recorded; .*database or disk is full/);
    assert.equal((await h.store.getJob(job.id))?.status, 'running');

    // Each try that fails waits twice as long as the one before, on the engine's clock alone.
    const waits = [((await firstWait) as [number])[0]];
    for (let i = 0; i < 3; i++) {
      const next = once(clock.timers, 'set');
      clock.advance(waits.at(-1)!);
      waits.push(((await next) as [number])[0]);
    }
    assert.deepEqual(
      waits,
      [1, 2, 4, 8].map((k) => k * WRITE_RETRY_FIRST_MS),
    );

    await disk.free();
    clock.advance(waits.at(-1)!);
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, (await h.store.getJob(job.id))?.status);
    assert.notEqual(done.status, 'running');
    assert.equal(
      done.finishedAt?.getTime(),
      clock.now().getTime() - 15 * WRITE_RETRY_FIRST_MS,
      'when it ended',
    );
  });

  it('defect 15: a resume that cannot be recorded answers INSUFFICIENT_STORAGE and leaves the job frozen, as recorded', async () => {
    const started = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', 'echo ready; exec sleep 600'] },
      me,
    );
    await waitForFileText(join(h.dataDir, 'jobs', started.id, 'stdout'), 'ready\n');
    const job = await h.engine.pause(started.id);
    assert.equal(await frozen(job), true);

    await disk.fill();
    try {
      await assert.rejects(h.engine.resume(job.id), {
        code: 'INSUFFICIENT_STORAGE',
        message: /jobworker\.db: database or disk is full/,
      });
      assert.equal((await h.store.getJob(job.id))?.status, 'paused');
      assert.equal(await frozen(job), true, 'frozen, as its record says');
    } finally {
      await disk.free();
    }
    assert.equal((await h.engine.resume(job.id)).status, 'running');
    assert.equal(await frozen(job), false);
    await h.engine.stop(job.id, me, { graceMs: 0 });
    assert.equal((await h.engine.waitFor(job.id)).status, 'stopped');
  });

  it('defect 15: closing the engine while an end waits for space clears its retry, and the next engine records the end', async () => {
    const fifo = join(scratch, 'release-on-close');
    await makeFifo(fifo);
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', `echo ready; read line < ${fifo}`] },
      me,
    );
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready\n');
    // Indexed while there is room: below, only the store is full.
    await indexedBy(h, job);
    await disk.fill(1);
    const reported = once(h.engine, 'engine:error');
    await writeFile(fifo, 'go\n');
    await reported;
    assert.ok(clock.pending > 0, 'a retry is due');

    await h.close();
    assert.equal(clock.pending, 0, 'no timer of the closed engine is left');
    await disk.free();
    h = await h.reopen();
    const done = await h.engine.waitFor(job.id);
    assert.notEqual(done.status, 'running');
    assert.equal((await h.store.getJob(job.id))?.status, done.status);
  });

  it('a job whose last output the combined index cannot take on a full disk is recorded final only once space returns, with every byte in its all view', async () => {
    const fifo = join(scratch, 'release-last-words');
    await makeFifo(fifo);
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', `echo ready; read line < ${fifo}; echo last words`] },
      me,
    );
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready\n');
    // Not indexed yet (nobody followed it, no sweep came): the index's first block is needed for
    // its output, and the one block left goes to the wrapper's exit record. Its last words fit in
    // its stdout's block.
    await disk.fill(1);
    const reported = once(h.engine, 'engine:error');
    await writeFile(fifo, 'go\n');
    const [err, jobId] = (await reported) as [Error, string];
    assert.equal(jobId, job.id);
    assert.match(err.message, /the end of the job could not be read; .*ENOSPC/);
    assert.equal((await h.store.getJob(job.id))?.status, 'running');

    await disk.free();
    clock.advance(WRITE_RETRY_FIRST_MS);
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.outputBytes, { stdout: 17, stderr: 0 });
    const all = await h.engine.readOutput(job.id, { selector: 'all', cursor: 0, limitBytes: 1024 });
    const text = all.events.map((event) =>
      event.type === 'data' ? event.data.toString() : `[${event.type}]`,
    );
    assert.equal(text.join(''), 'ready\nlast words\n');
  });

  it("a job that ends by itself on a full disk is recorded with its exit code once space returns, its end time kept within the engine clock's", async () => {
    const fifo = join(scratch, 'release-exit-3');
    await makeFifo(fifo);
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', `echo ready; read line < ${fifo}; exit 3`] },
      me,
    );
    const dir = join(h.dataDir, 'jobs', job.id);
    await waitForFileText(join(dir, 'stdout'), 'ready\n');
    await disk.fill();
    try {
      // No room even for the exit record: the wrapper waits for space (its temporary file shows
      // it tried), so the engine sees nothing end.
      const tried = whenWrapperTriesToRecord(dir);
      await writeFile(fifo, 'go\n');
      await tried;
      assert.equal((await h.store.getJob(job.id))?.status, 'running');
    } finally {
      await disk.free();
    }
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.exit?.exitCode, 3);
    assert.equal(done.exit?.reason, 'exited with code 3');
    // The record's time is the wall clock's; on the engine's manual clock it is kept between the
    // job's start and now, never outside the job's own span.
    assert.ok(done.finishedAt! >= job.startedAt!, `${done.finishedAt?.toISOString()} after the start`);
    assert.ok(done.finishedAt! <= clock.now(), `${done.finishedAt?.toISOString()} not after now`);
  });
});

/** Brings the job's combined index up to what it printed (a read does), while the disk has room. */
async function indexedBy(h: Harness, job: Job): Promise<void> {
  await h.engine.readOutput(job.id, { selector: 'all', cursor: 0, limitBytes: 1 });
}

/** Whether the job's processes are held frozen: its cgroup's freezer, else SIGSTOP (state T). */
async function frozen(job: Job): Promise<boolean> {
  for (const dir of job.process?.cgroups ?? []) {
    const v2 = await readFile(join(dir, 'cgroup.freeze'), 'utf8').catch(() => undefined);
    if (v2 !== undefined) return v2.trim() === '1';
    const v1 = await readFile(join(dir, 'freezer.state'), 'utf8').catch(() => undefined);
    if (v1 !== undefined) return v1.trim() !== 'THAWED';
  }
  const stat = await readFile(`/proc/${job.process!.pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
}

describe('retention with the job directory on a full disk', () => {
  const CAP = 64 * 1024;
  let disk: SmallDisk;
  let scratch: string;
  let h: Harness;
  before(async () => {
    disk = await mountSmallDisk('4m');
    scratch = await mkdtemp(join(tmpdir(), 'jw-engine-full-'));
    const dataDir = join(disk.dir, 'data');
    await mkdir(dataDir);
    h = await openHarness({ clock: new ManualClock(), outputCapBytes: CAP }, dataDir);
  });
  after(async () => {
    await h.destroy();
    await disk.destroy();
    await rm(scratch, { recursive: true, force: true });
  });

  it('a job whose output filled the disk is trimmed to its cap, which frees the disk, and its end is recorded', async () => {
    const [full, go, release] = [join(scratch, 'full'), join(scratch, 'go'), join(scratch, 'release')];
    await makeFifo(go);
    await makeFifo(release);
    const line = '0123456789abcde\n';
    // Twice the disk: head fails with ENOSPC once it is full (the engine's sweep, on a manual
    // clock, observes nothing meanwhile), then the job says so off the disk and waits. Its own
    // word, not the disk's free blocks at that moment: what an earlier test left may be freed
    // meanwhile. It fills the disk only once its start is on record: a start recorded after the
    // disk filled would wait for its retry, which the manual clock never brings.
    const job = await startRunning(
      h.engine,
      {
        command: 'sh',
        args: [
          '-c',
          `read go < "$1"; if yes 0123456789abcde | head -c 8388608; then echo room > "$0"; else echo full > "$0"; fi; read line < "$2"`,
          full,
          go,
          release,
        ],
      },
      me,
    );
    await writeFile(go, 'go\n');
    assert.equal(
      (await waitForFileText(full, '\n')).trim(),
      'full',
      'the job filled the disk: its write failed',
    );
    const stdout = join(h.dataDir, 'jobs', job.id, 'stdout');
    const size = (await stat(stdout)).size;

    // A read observes the job first: its kept window moves, and the punch frees the disk.
    const read = await h.engine.readOutput(job.id, { selector: 'stdout', cursor: 0, limitBytes: 1 << 20 });
    const [marker, ...rest] = read.events;
    assert.equal(marker?.type, 'truncated');
    const data = Buffer.concat(rest.flatMap((e) => (e.type === 'data' ? [e.data] : [])));
    assert.equal(marker.cursor + data.length, size);
    assert.ok(data.length <= CAP + retentionSlack(CAP), `kept ${data.length}`);
    const pattern = Buffer.from(line);
    assert.ok(
      data.every((byte, i) => byte === pattern[(marker.cursor + i) % pattern.length]),
      'the newest bytes the job wrote, no zero of a hole',
    );
    assert.ok((await stat(stdout)).blocks * 512 <= CAP + retentionSlack(CAP) + 4096);
    assert.ok((await disk.freeBlocks()) > 0, 'the disk has room again');

    // Room for the wrapper's exit record and the store: the end is recorded as it happened.
    await writeFile(release, 'go\n');
    assert.equal((await h.engine.waitFor(job.id)).status, 'succeeded');
  });
});
