import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type BatchSizes, loadBatchSizes } from '../../src/output/batch-sizes.ts';
import { OutputMonitor, SWEEP_MAX_MS, SWEEP_MIN_MS } from '../../src/output/output-monitor.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { jobDir } from './output-helpers.ts';

// The sweep through the batch addon (the server's way): the sizes of every job due in one call
// off the event loop; only jobs that grew are observed. Stream files are written directly: the
// monitor sees nothing but their sizes.

function realBatchSizes(): BatchSizes {
  const loaded = loadBatchSizes();
  assert.ok('batchSizes' in loaded, `expected the addon, got: ${'reason' in loaded ? loaded.reason : ''}`);
  return loaded.batchSizes;
}

/**
 * The real batch, recording the directories of each call, when (by the clock) it was made, and
 * its answer (`answered`, which settles once the sweep has its sizes).
 */
function recording(clock: ManualClock, inner: BatchSizes = realBatchSizes()) {
  const calls: { at: number; dirs: readonly string[]; answered: Promise<unknown> }[] = [];
  const batchSizes: BatchSizes = (dirs) => {
    const answer = inner(dirs);
    calls.push({ at: clock.now().getTime(), dirs, answered: answer.catch(() => undefined) });
    return answer;
  };
  return { calls, batchSizes };
}

/** One turn of the event loop: what a settled promise set off (the next sweep's timer) has run. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const combinedEnd = async (dir: string) =>
  (await readOutput(dir, { selector: 'all', cursor: 0, limitBytes: 1 })).end;

/** A monitor sweeping through `batchSizes` on `clock`, closed when the test ends, and what it reported. */
function reportingMonitor(t: TestContext, clock: ManualClock, batchSizes: BatchSizes) {
  const errors: { err: Error; jobId: string | undefined }[] = [];
  const monitor = new OutputMonitor({
    capBytes: 1024 * 1024,
    clock,
    batchSizes,
    onError: (err, jobId) => errors.push({ err, jobId }),
  });
  t.after(() => monitor.close());
  return { monitor, errors };
}

/** A job directory `name` under `root`, its `stream` holding `text`. */
async function jobWriting(root: string, name: string, stream: 'stdout' | 'stderr', text: string) {
  const dir = join(root, name);
  await mkdir(dir);
  await appendFile(join(dir, stream), text);
  return dir;
}

/** Moves the clock on and waits for the sweep it started (if any) to be over. */
async function sweepAfter(clock: ManualClock, monitor: OutputMonitor, ms: number): Promise<void> {
  clock.advance(ms);
  await monitor.swept();
}

test('a sweep reads every due job in one batch and observes only those that grew; quiet ones back off', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const start = clock.now().getTime();
  const { calls, batchSizes } = recording(clock);
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const [busy, quiet] = [join(root, 'busy'), join(root, 'quiet')];
  for (const dir of [busy, quiet]) await mkdir(dir);
  monitor.watch('busy', busy);
  monitor.watch('quiet', quiet);
  await appendFile(join(busy, 'stdout'), 'one\n');
  // The quiet job's index cannot be opened: an observation that went to it would say so.
  await mkdir(join(quiet, 'combined.idx'));

  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.deepEqual(
    calls.map((c) => c.dirs),
    [[busy, quiet]],
    'both due: one call',
  );
  assert.equal(await combinedEnd(busy), 4, 'the job that grew was observed up to what the batch read');
  assert.deepEqual(errors, [], 'the quiet one was not observed: its sizes had not changed');

  await appendFile(join(busy, 'stderr'), 'two\n');
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.equal(await combinedEnd(busy), 8);
  // A quiet job is swept every SWEEP_MIN_MS, doubling up to SWEEP_MAX_MS, each time from the batch
  // alone: the quiet one from the start, the busy one once it stopped writing.
  for (let i = 0; i < 4; i++) await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  const seen = (dir: string) => calls.filter((c) => c.dirs.includes(dir)).map((c) => c.at - start);
  assert.equal(SWEEP_MAX_MS, 2 * SWEEP_MIN_MS);
  assert.deepEqual(seen(quiet), [1000, 2000, 4000, 6000]);
  assert.deepEqual(seen(busy), [1000, 2000, 3000, 4000, 6000]);
  assert.deepEqual(errors, []);
  assert.equal(await combinedEnd(busy), 8);
});

test('a job sealed while the batch was out is not observed again; a followed one is in the next batch', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const held = Promise.withResolvers<void>();
  const real = realBatchSizes();
  // Held before it stats: the sizes it brings back are those of the moment it is let go.
  const { calls, batchSizes } = recording(clock, async (dirs) => {
    await held.promise;
    return real(dirs);
  });
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const followed = await jobWriting(root, 'followed', 'stdout', 'abc');
  const sealed = await jobWriting(root, 'sealed', 'stdout', 'abc');
  const plain = await jobWriting(root, 'plain', 'stdout', 'abc');
  monitor.watch('followed', followed);
  monitor.watch('sealed', sealed);
  monitor.watch('plain', plain);

  clock.advance(SWEEP_MIN_MS);
  assert.equal(calls.length, 1);
  const notices: string[] = [];
  const unsubscribe = monitor.subscribe('followed', (notice) => notices.push(notice));
  t.after(() => unsubscribe?.());
  await monitor.refresh('followed');
  assert.deepEqual(notices, ['output:grow'], 'its watch observed it');
  // The job's end seals it with an observation of its own, and untracks it. A process it left
  // behind writes on; its index is made unopenable, so that a swept observation of the sealed job
  // (which would find its sizes grown) would say so.
  assert.deepEqual(await monitor.finish('sealed'), { stdout: 3, stderr: 0 });
  await appendFile(join(sealed, 'stdout'), 'late');
  await rm(join(sealed, 'combined.idx'));
  await mkdir(join(sealed, 'combined.idx'));
  // No second sweep while the first is out, however far the clock goes.
  clock.advance(10 * SWEEP_MAX_MS);
  assert.equal(calls.length, 1);

  held.resolve();
  await monitor.swept();
  assert.deepEqual(errors, [], 'the sealed job was not observed again');
  assert.equal(await combinedEnd(plain), 3, 'the plain job was observed from the batch');
  // The next sweep is armed again once the first is over, and asks for the jobs still running:
  // the followed one too (its watch may miss a write), not the sealed one.
  await sweepAfter(clock, monitor, SWEEP_MAX_MS);
  assert.deepEqual(calls.at(-1)?.dirs, [followed, plain]);
});

test('a followed job whose watch missed a write is observed by the sweep, every SWEEP_MAX_MS however many followers it has', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const start = clock.now().getTime();
  const { calls, batchSizes } = recording(clock);
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const followed = await jobWriting(root, 'followed', 'stdout', 'first\n');
  monitor.watch('followed', followed);
  const notices: string[] = [];
  const unsubscribes = Array.from({ length: 1000 }, () =>
    monitor.subscribe('followed', (notice) => notices.push(notice)),
  );
  t.after(() => {
    for (const unsubscribe of unsubscribes) unsubscribe?.();
  });
  await monitor.refresh('followed');
  assert.equal(await combinedEnd(followed), 6);
  // A write the directory's watch does not see, as one lost with an inotify queue that overflowed:
  // through a hard link in another directory (inotify tells the watch of the directory the write
  // went through).
  const elsewhere = join(root, 'elsewhere');
  await mkdir(elsewhere);
  execFileSync('ln', [join(followed, 'stdout'), join(elsewhere, 'stdout')]);
  const fd = openSync(join(elsewhere, 'stdout'), constants.O_WRONLY | constants.O_APPEND);
  writeSync(fd, 'last words\n');
  closeSync(fd);
  notices.length = 0;

  for (let i = 0; i < 3; i++) await sweepAfter(clock, monitor, SWEEP_MAX_MS);
  assert.equal(await combinedEnd(followed), 17, 'the sweep observed what the watch missed');
  assert.equal(notices.length, 1000, 'each follower told once');
  assert.deepEqual(
    calls.filter((c) => c.dirs.includes(followed)).map((c) => c.at - start),
    [2000, 4000, 6000],
    'swept at the slowest period, as one job',
  );
  assert.deepEqual(errors, []);
});

test('sizes a batch brought back after a newer observation never take the job back', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const stale = Promise.withResolvers<void>();
  const real = realBatchSizes();
  // Stats at once, then holds its answer back while the job writes on and is refreshed.
  const statted = Promise.withResolvers<void>();
  const { batchSizes } = recording(clock, async (dirs) => {
    const sizes = await real(dirs);
    statted.resolve();
    await stale.promise;
    return sizes;
  });
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const dir = await jobWriting(root, 'job', 'stdout', 'ab');
  monitor.watch('job', dir);
  clock.advance(SWEEP_MIN_MS);
  // The batch has stat-ed (2 bytes) before the job writes on.
  await statted.promise;
  await appendFile(join(dir, 'stdout'), 'cdef');
  await monitor.refresh('job');
  assert.equal(await combinedEnd(dir), 6);
  // Were the stale sizes observed, the index (now unopenable) would be opened: an error.
  await rm(join(dir, 'combined.idx'));
  await mkdir(join(dir, 'combined.idx'));
  stale.resolve();
  await monitor.swept();
  assert.deepEqual(errors, []);
  // Nor did they take what the job is known to hold back to 2 bytes: the next sweep, finding 6,
  // would then observe it again.
  await sweepAfter(clock, monitor, SWEEP_MAX_MS);
  assert.deepEqual(errors, []);
});

test('sizes partly older than the last observation are taken stream by stream, the furthest of each', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const real = realBatchSizes();
  // The first batch answers with stdout as it was before the refresh below, stderr as it is now.
  let first = true;
  const { batchSizes } = recording(clock, (dirs) => {
    if (!first) return real(dirs);
    first = false;
    return Promise.resolve([{ stdout: 2, stderr: 5 }]);
  });
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const dir = await jobWriting(root, 'job', 'stdout', 'abcdef');
  monitor.watch('job', dir);
  await monitor.refresh('job');
  await appendFile(join(dir, 'stderr'), '12345');
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.equal(await combinedEnd(dir), 11, 'stdout kept at 6, stderr taken to 5');
  // What the job is known to hold is 6 and 5, not 2 and 5: the next sweep, finding 6 and 5, has
  // nothing to do (else it would open the index, now unopenable).
  await rm(join(dir, 'combined.idx'));
  await mkdir(join(dir, 'combined.idx'));
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.deepEqual(errors, []);
});

test('an observation that hangs does not hold up the sweep of the other jobs', async (t) => {
  const root = await jobDir(t);
  // The punch of retention runs fallocate(1), a child process: this one waits until let go (a
  // line on a FIFO), as a punch on a stalled disk would, then punches.
  const gate = join(root, 'gate');
  execFileSync('mkfifo', [gate]);
  const fallocate = join(root, 'slow-fallocate');
  // At most 20 s: a regression fails this test instead of leaving a child that holds the run.
  const script = `#!/bin/sh\ntimeout 20 sh -c 'read line < "$0"' '${gate}'\nexec fallocate "$@"\n`;
  await writeFile(fallocate, script, { mode: 0o755 });
  // Held open both ways from the start: the line is kept in the pipe for the script however late
  // it opens the FIFO, and can be written after the directory is gone (after hooks run in order).
  const gateFd = openSync(gate, constants.O_RDWR | constants.O_NONBLOCK);
  let gone = false;
  const letGo = () => {
    if (gone) return;
    gone = true;
    writeSync(gateFd, 'go\n');
  };
  t.after(() => {
    letGo();
    closeSync(gateFd);
  });
  const clock = new ManualClock();
  const { calls, batchSizes } = recording(clock);
  const monitor = new OutputMonitor({ capBytes: 1024, clock, batchSizes, fallocatePath: fallocate });
  t.after(() => monitor.close());
  const [slow, other] = [join(root, 'slow'), join(root, 'other')];
  for (const dir of [slow, other]) await mkdir(dir);
  monitor.watch('slow', slow);
  monitor.watch('other', other);
  // Past its cap by more than the slack (64 KiB): its observation punches, and hangs there.
  await appendFile(join(slow, 'stdout'), Buffer.alloc(200 * 1024, 'a'));
  clock.advance(SWEEP_MIN_MS);
  assert.equal(calls.length, 1);
  await calls[0]!.answered;
  await nextTurn();

  await appendFile(join(other, 'stderr'), 'still swept\n');
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.equal(calls.length, 2, 'the next sweep came on time');
  assert.deepEqual(calls[1]!.dirs, [slow, other]);
  assert.equal(await combinedEnd(other), 12, 'and observed the other job');
  letGo();
  await monitor.refresh('slow');
  assert.equal(await combinedEnd(slow), 200 * 1024);
});

test('a batch that fails as a whole is reported once; each due job is observed the synchronous way; the sweep goes on', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  let fail = true;
  const real = realBatchSizes();
  const { calls, batchSizes } = recording(clock, (dirs) =>
    fail ? Promise.reject(new Error('pool exhausted')) : real(dirs),
  );
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const a = await jobWriting(root, 'a', 'stderr', 'ab');
  const b = await jobWriting(root, 'b', 'stderr', 'ab');
  monitor.watch('a', a);
  monitor.watch('b', b);
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.deepEqual(
    errors.map(({ err, jobId }) => ({ message: err.message, jobId })),
    [
      {
        message: "the sweep could not read 2 jobs' sizes at once (pool exhausted); observing each",
        jobId: undefined,
      },
    ],
  );
  assert.equal(await combinedEnd(a), 2);
  assert.equal(await combinedEnd(b), 2);

  fail = false;
  await appendFile(join(a, 'stdout'), 'c');
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.equal(calls.length, 2, 'the timer was armed again after the failure');
  assert.equal(await combinedEnd(a), 3);
  assert.equal(errors.length, 1);
});

test('one job whose sizes cannot be read is reported with its id; the sweep keeps trying it and observes the others', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const { calls, batchSizes } = recording(clock);
  const { monitor, errors } = reportingMonitor(t, clock, batchSizes);
  const [broken, sound] = [join(root, 'broken'), join(root, 'sound')];
  await mkdir(sound);
  await mkdir(broken);
  await appendFile(join(sound, 'stdout'), 'ok');
  monitor.watch('broken', broken);
  monitor.watch('sound', sound);
  // Its directory replaced by a file: stat of broken/stdout fails with ENOTDIR.
  await rm(broken, { recursive: true });
  await appendFile(broken, 'x');
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.deepEqual(
    errors.map(({ err, jobId }) => ({ code: (err as NodeJS.ErrnoException).code, jobId })),
    [{ code: 'ENOTDIR', jobId: 'broken' }],
  );
  assert.equal(await combinedEnd(sound), 2);
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.ok(calls.at(-1)?.dirs.includes(broken), 'still swept');
  assert.equal(errors.length, 2);
  // ...less and less often, as a quiet job: not at the third second, again at the fourth.
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  const start = calls[0]!.at - SWEEP_MIN_MS;
  assert.deepEqual(
    calls.filter((c) => c.dirs.includes(broken)).map((c) => c.at - start),
    [1000, 2000, 4000],
  );
  assert.equal(errors.length, 3);
});

test('a listener of errors that throws does not end the sweep', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  let told = 0;
  const { calls, batchSizes } = recording(clock, () => Promise.reject(new Error('no pool')));
  const monitor = new OutputMonitor({
    capBytes: 1024 * 1024,
    clock,
    batchSizes,
    onError: () => {
      told++;
      throw new Error('the listener failed too');
    },
  });
  t.after(() => monitor.close());
  const dir = await jobWriting(root, 'job', 'stdout', 'abc');
  monitor.watch('job', dir);
  await sweepAfter(clock, monitor, SWEEP_MIN_MS);
  assert.equal(told, 1);
  assert.equal(await combinedEnd(dir), 3, 'observed the synchronous way all the same');
  await sweepAfter(clock, monitor, SWEEP_MAX_MS);
  assert.equal(calls.length, 2, 'and swept again');
});

test('closing while a batch is out: nothing is observed when it comes back and no timer is armed', async (t) => {
  const root = await jobDir(t);
  const clock = new ManualClock();
  const held = Promise.withResolvers<void>();
  const real = realBatchSizes();
  const { calls, batchSizes } = recording(clock, async (dirs) => {
    await held.promise;
    return real(dirs);
  });
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock, batchSizes });
  const dir = await jobWriting(root, 'job', 'stdout', 'abc');
  monitor.watch('job', dir);
  clock.advance(SWEEP_MIN_MS);
  monitor.close();
  held.resolve();
  await monitor.swept();
  assert.equal(await combinedEnd(dir), 0, 'not observed after close');
  clock.advance(10 * SWEEP_MAX_MS);
  await monitor.swept();
  assert.equal(calls.length, 1);
});
