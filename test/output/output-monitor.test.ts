import assert from 'node:assert/strict';
import { watch } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CursorError } from '../../src/core/errors.ts';
import { followOutput } from '../../src/output/output-follower.ts';
import { isLiveTail, LIVE_TAIL_BYTES, OutputMonitor, SWEEP_MIN_MS } from '../../src/output/output-monitor.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import type { OutputEvent } from '../../src/output/output-types.ts';
import { readKeptWindow, writeKeptWindow } from '../../src/output/retention.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { collect, fixture, type Job, jobDir, openIn, startJob } from './output-helpers.ts';

/** Resolves once the file at `path` holds `size` bytes, woken by a kernel watch on its directory. */
async function untilSize(dir: string, name: string, size: number): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const check = () =>
    stat(join(dir, name)).then(
      (s) => s.size >= size && resolve(),
      () => undefined,
    );
  const watcher = watch(dir, () => void check());
  try {
    await check();
    await promise;
  } finally {
    watcher.close();
  }
}

/** The job's input: `out TEXT` prints TEXT on stdout, `err TEXT` on stderr. */
async function alternating(dir: string): Promise<Job> {
  return startJob(dir, ['sh', fixture('output-alternate.sh')], 'pipe');
}

const combinedEnd = async (dir: string) =>
  (await readOutput(dir, { selector: 'all', cursor: 0, limitBytes: 1 })).end;

function runs(events: readonly OutputEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'data' ? [`${e.stream}:${e.data.toString()}`] : []));
}

test('a job nobody follows has no kernel watch; a follower that attaches after it wrote gets every byte', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock: new ManualClock() });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  monitor.watch('late', dir);
  job.child.stdin!.write('out one\nerr two\n');
  await untilSize(dir, 'stderr', 4);
  assert.equal(monitor.watchCount, 0, 'no watch while nobody follows');
  assert.equal(await combinedEnd(dir), 0, 'and nothing observed yet');

  const following = collect(followOutput(monitor, dir, 'late', { selector: 'all', cursor: 0 }));
  assert.equal(monitor.watchCount, 1, 'the first follower opened the watch');
  job.child.stdin!.end('out three\n');
  assert.equal(await job.exited, 0);
  await monitor.finish('late');
  // Written before the watch: observed at once, stdout first; then what came after.
  assert.deepEqual(runs(await following), ['stdout:one\n', 'stderr:two\n', 'stdout:three\n']);
  assert.equal(monitor.watchCount, 0);
  assert.equal(monitor.listenerCount(), 0);
});

test('the watch goes when the last follower leaves, also when the follow throws after it subscribed', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock: new ManualClock() });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  t.after(() => job.child.stdin!.end());
  monitor.watch('busy', dir);

  const first = new AbortController();
  const a = collect(
    followOutput(monitor, dir, 'busy', { selector: 'stdout', cursor: 0, signal: first.signal }),
  );
  const b = followOutput(monitor, dir, 'busy', { selector: 'stderr', cursor: 0 });
  const bNext = b.next();
  assert.equal(monitor.watchCount, 1, 'one watch for both');
  first.abort();
  assert.deepEqual(await a, []);
  assert.equal(monitor.watchCount, 1, 'the other follower still holds it');
  job.child.stdin!.write('err x\n');
  assert.equal((await bNext).done, false);
  await b.return();
  assert.equal(monitor.watchCount, 0, 'released with the last follower');

  // Past the end: the follow subscribes, then its first read throws.
  await assert.rejects(
    collect(followOutput(monitor, dir, 'busy', { selector: 'stdout', cursor: 99 })),
    CursorError,
  );
  assert.equal(monitor.watchCount, 0);
  assert.equal(monitor.listenerCount(), 0);
});

test('the sweep indexes a job nobody follows, and a refresh does so at once', async (t) => {
  const dir = await jobDir(t);
  const clock = new ManualClock();
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  t.after(() => job.child.stdin!.end());
  monitor.watch('quiet', dir);
  job.child.stdin!.write('out a\n');
  await untilSize(dir, 'stdout', 2);
  assert.equal(await combinedEnd(dir), 0);
  await monitor.refresh('quiet');
  assert.equal(await combinedEnd(dir), 2);

  job.child.stdin!.write('err bc\n');
  await untilSize(dir, 'stderr', 3);
  clock.advance(SWEEP_MIN_MS - 1);
  assert.equal(await combinedEnd(dir), 2, 'not due yet');
  // Due: the sweep observes it. Its few calls on small files are synchronous, so the observation is
  // over by the time this asynchronous read of the index starts.
  clock.advance(1);
  assert.equal(await combinedEnd(dir), 5, 'observed by the sweep');
  assert.equal(monitor.watchCount, 0);
});

test('followers at the same position share one read and its buffers', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock: new ManualClock() });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  t.after(() => job.child.stdin!.end());
  monitor.watch('shared', dir);
  job.child.stdin!.write('out hello\n');
  await untilSize(dir, 'stdout', 6);
  const one = followOutput(monitor, dir, 'shared', { selector: 'stdout', cursor: 0 });
  const two = followOutput(monitor, dir, 'shared', { selector: 'stdout', cursor: 0 });
  const [a, b] = await Promise.all([one.next(), two.next()]);
  assert.equal(a.value, b.value, 'the same batch, not an equal one');
  assert.equal(runs(a.value ?? []).join(''), 'stdout:hello\n');
  await Promise.all([one.return(), two.return()]);
  assert.equal(monitor.watchCount, 0);
});

test('a job that printed nothing ends with no index file; its output reads empty and a follower ends', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock: new ManualClock() });
  t.after(() => monitor.close());
  const job = await startJob(dir, ['true'], 'pipe');
  monitor.watch('silent', dir);
  const following = collect(followOutput(monitor, dir, 'silent', { selector: 'all', cursor: 0 }));
  assert.equal(await job.exited, 0);
  await monitor.finish('silent');
  assert.deepEqual(await following, [], 'no data, and the follow ended');
  await assert.rejects(stat(join(dir, 'combined.idx')), { code: 'ENOENT' });
  assert.equal(await combinedEnd(dir), 0);

  // One that printed a byte still gets its index at the end.
  const other = await jobDir(t);
  const printer = await startJob(other, ['sh', '-c', 'printf x'], 'pipe');
  monitor.watch('printer', other);
  assert.equal(await printer.exited, 0);
  await monitor.finish('printer');
  assert.equal((await stat(join(other, 'combined.idx'))).size > 0, true);
  assert.equal(await combinedEnd(other), 1);
});

test('an observation that finds the sizes of the last one does nothing; the seal resolves with the final sizes', async (t) => {
  const dir = await jobDir(t);
  const errors: Error[] = [];
  const monitor = new OutputMonitor({
    capBytes: 1024 * 1024,
    clock: new ManualClock(),
    onError: (err) => errors.push(err),
  });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  monitor.watch('steady', dir);
  job.child.stdin!.write('out abc\n');
  await untilSize(dir, 'stdout', 4);
  await monitor.refresh('steady');
  assert.equal(await combinedEnd(dir), 4);

  // An index that cannot be opened any more: only an observation that goes to it can tell.
  await rm(join(dir, 'combined.idx'));
  await mkdir(join(dir, 'combined.idx'));
  await monitor.refresh('steady');
  assert.equal(errors.length, 0, 'same sizes: the index was not opened');

  job.child.stdin!.end('err de\n');
  assert.equal(await job.exited, 0);
  // Grown: the observation goes to the index, fails, and says so; the seal has no sizes to give.
  // Not a full disk (which the seal's caller waits out, trying again): a failure no retry would
  // mend must not hold the job's end for ever.
  assert.equal(await monitor.finish('steady'), undefined);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /EISDIR|illegal operation on a directory/);
  assert.deepEqual(await monitor.sizes(dir), { stdout: 4, stderr: 3 });

  // A sound job's seal resolves with what its streams hold, as often as it is asked.
  const other = await jobDir(t);
  const printer = await startJob(other, ['sh', '-c', 'printf abc; printf de >&2'], 'pipe');
  monitor.watch('printer', other);
  assert.equal(await printer.exited, 0);
  assert.deepEqual(await monitor.finish('printer'), { stdout: 3, stderr: 2 });
  assert.deepEqual(await monitor.finish('printer', other), { stdout: 3, stderr: 2 });
  assert.equal(await monitor.finish('unknown'), undefined);
});

test('followers are told of new bytes even when retention cannot move the kept window, and it moves at the next observation', async (t) => {
  const dir = await jobDir(t);
  const errors: Error[] = [];
  const monitor = new OutputMonitor({
    capBytes: 4096,
    clock: new ManualClock(),
    onError: (err) => errors.push(err),
  });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  t.after(() => job.child.kill());
  monitor.watch('capped', dir);
  const page = { selector: 'stdout', cursor: 0, limitBytes: 65536 } as const;
  // A read shared among followers, made before the job wrote: growth must end its sharing.
  assert.equal((await monitor.read('capped', dir, page)).end, 0);

  // The kept window cannot be written (its temporary file's name is taken by a directory).
  const temp = `${join(dir, 'kept.json')}.tmp`;
  await mkdir(temp);
  // Past the cap and its slack (64 KiB): the window would move. Written whole before anything
  // observes it (a shell may write it in pieces), so that one observation sees it all.
  job.child.stdin!.write(`out ${'x'.repeat(99_999)}\n`);
  await untilSize(dir, 'stdout', 100_000);
  const notices: string[] = [];
  // Subscribed now: the first follower's observation (of all 100,000 bytes at once) is the one.
  const unsubscribe = monitor.subscribe('capped', (notice) => notices.push(notice));
  t.after(() => unsubscribe?.());
  await monitor.refresh('capped');
  assert.ok(errors.length >= 1);
  assert.match(errors[0]!.message, /EISDIR|illegal operation on a directory/);
  assert.ok(notices.includes('output:grow'), 'the follower was told of the bytes the index now holds');
  assert.equal((await monitor.read('capped', dir, page)).end, 100_000, 'not the read shared from before');

  // Once the window can be written, the next observation moves it past the dropped bytes.
  await rm(temp, { recursive: true });
  job.child.stdin!.end('out k\n');
  assert.equal(await job.exited, 0);
  assert.deepEqual(await monitor.finish('capped'), { stdout: 100_002, stderr: 0 });
  // The newest 4,096 bytes and more, from the block boundary before them.
  assert.deepEqual(await readKeptWindow(dir), { stdout: 94_208, stderr: 0 });
  const read = await readOutput(dir, page);
  assert.equal(read.end, 100_002);
  assert.deepEqual(read.events[0], {
    type: 'truncated',
    stream: 'stdout',
    skippedBytes: 94_208,
    cursor: 94_208,
  });
});

test('only a read near the observed end of its view is the live tail (read synchronously)', () => {
  const observed = { stdout: 5 * LIVE_TAIL_BYTES, stderr: LIVE_TAIL_BYTES };
  const at = (selector: 'all' | 'stdout' | 'stderr', cursor: number) =>
    isLiveTail(observed, { selector, cursor, limitBytes: 65536 });
  assert.equal(at('all', 6 * LIVE_TAIL_BYTES - 10), true);
  assert.equal(at('all', 5 * LIVE_TAIL_BYTES), true);
  assert.equal(
    at('all', 0),
    false,
    'a follower from the start of a long output reads through the thread pool',
  );
  assert.equal(at('stdout', 4 * LIVE_TAIL_BYTES), true);
  assert.equal(at('stdout', LIVE_TAIL_BYTES), false);
  assert.equal(at('stderr', 0), true);
  assert.equal(
    isLiveTail(undefined, { selector: 'all', cursor: 0, limitBytes: 65536 }),
    false,
    'nothing observed yet',
  );
});

test('a followed job holds its files open until its last follower leaves; a read under way keeps them to its end', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024, clock: new ManualClock() });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  t.after(() => job.child.stdin!.end());
  monitor.watch('held', dir);
  job.child.stdin!.write('out one\n');
  await untilSize(dir, 'stdout', 4);
  await monitor.refresh('held');
  assert.deepEqual(openIn(dir), [], 'nobody follows: nothing held between observations');

  const unsubscribe = monitor.subscribe('held', () => {});
  assert.ok(unsubscribe);
  job.child.stdin!.write('err two\n');
  await untilSize(dir, 'stderr', 4);
  await monitor.refresh('held');
  assert.deepEqual(openIn(dir), ['combined.idx', 'stderr', 'stdout']);
  // The reads go through those descriptors, not the paths: with the stream files renamed away, a
  // read by path would find no stream to read.
  for (const name of ['stdout', 'stderr']) await rename(join(dir, name), join(dir, `${name}.moved`));
  const page = { selector: 'all', cursor: 0, limitBytes: 1024 } as const;
  assert.deepEqual(runs((await monitor.read('held', dir, page)).events), ['stdout:one\n', 'stderr:two\n']);
  assert.deepEqual(openIn(dir), ['combined.idx', 'stderr.moved', 'stdout.moved'], 'the read left them open');

  // The last follower leaves while a read is under way (it goes on in later microtasks).
  const reading = monitor.read('held', dir, { ...page, cursor: 4 });
  unsubscribe();
  assert.deepEqual(runs((await reading).events), ['stderr:two\n']);
  assert.deepEqual(openIn(dir), [], 'closed once the read was over');
  assert.equal(monitor.watchCount, 0);
});

test('a followed job with a cap: a read from before its kept window gets the marker, then only kept bytes', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 4096, clock: new ManualClock() });
  t.after(() => monitor.close());
  const job = await alternating(dir);
  t.after(() => job.child.kill());
  monitor.watch('capped', dir);
  // Written whole before anything observes it (a shell may write it in pieces), so that one
  // observation sees it all: the first follower's, as it subscribes.
  job.child.stdin!.write(`out ${'a'.repeat(50_000)}${'z'.repeat(49_999)}\n`);
  await untilSize(dir, 'stdout', 100_000);
  const unsubscribe = monitor.subscribe('capped', () => {});
  t.after(() => unsubscribe?.());
  await monitor.refresh('capped');
  assert.deepEqual(await readKeptWindow(dir), { stdout: 94_208, stderr: 0 });
  // The read checks against the window the monitor moved, not the file: one made to say that
  // nothing was dropped would show the zeros of the punched hole.
  await writeKeptWindow(dir, { stdout: 0, stderr: 0 });
  const read = await monitor.read('capped', dir, { selector: 'stdout', cursor: 0, limitBytes: 65536 });
  // Its type first: a failure that compared a page of data with the marker would print all of it.
  assert.equal(read.events[0]?.type, 'truncated');
  assert.deepEqual(read.events[0], {
    type: 'truncated',
    stream: 'stdout',
    skippedBytes: 94_208,
    cursor: 94_208,
  });
  const data = Buffer.concat(read.events.flatMap((e) => (e.type === 'data' ? [e.data] : [])));
  assert.equal(data.toString(), `${'z'.repeat(5_791)}\n`, 'the kept bytes, none of the dropped');
  job.child.stdin!.end();
  await job.exited;
  await monitor.finish('capped');
  assert.deepEqual(openIn(dir), [], 'the seal let them go');
});
