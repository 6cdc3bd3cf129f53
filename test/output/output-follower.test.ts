import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CursorError } from '../../src/core/errors.ts';
import { followOutput } from '../../src/output/output-follower.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { bytesOf, collect, jobDir, startJob } from './output-helpers.ts';

// Prints to both streams, in bursts, for about two seconds.
const CHATTY = `end=$(($(date +%s%N) + 2000000000)); i=0
while [ "$(date +%s%N)" -lt "$end" ]; do
  for j in 1 2 3 4 5 6 7 8 9 10; do i=$((i + 1)); echo "out $i"; echo "err $i" >&2; echo "out $i again"; done
done`;

test('three followers per view of a live job each get exactly its bytes, over one watch', async (t) => {
  const dir = await jobDir(t);
  const errors: Error[] = [];
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024 * 1024, onError: (err) => errors.push(err) });
  t.after(() => monitor.close());
  const job = await startJob(dir, ['sh', '-c', CHATTY]);
  monitor.watch('chatty', dir);
  const views = ['stdout', 'stderr', 'all', 'stdout', 'stderr', 'all', 'stdout', 'stderr', 'all'] as const;
  const followers = views.map((selector, i) =>
    collect(followOutput(monitor, dir, 'chatty', { selector, cursor: 0, batchBytes: 512 * (i + 1) })),
  );
  // Each follower subscribes when it starts reading; all share the job's single kernel watch.
  assert.equal(monitor.watchCount, 1);
  assert.equal(await job.exited, 0);
  await monitor.finish('chatty');
  const received = await Promise.all(followers);

  const stdout = await readFile(join(dir, 'stdout'));
  const stderr = await readFile(join(dir, 'stderr'));
  assert.ok(stdout.length > 0 && stderr.length > 0);
  for (const [i, selector] of views.entries()) {
    const events = received[i]!;
    if (selector === 'stdout' || selector === 'all')
      assert.ok(bytesOf(events, 'stdout').equals(stdout), selector);
    if (selector === 'stderr' || selector === 'all')
      assert.ok(bytesOf(events, 'stderr').equals(stderr), selector);
    assert.ok(
      events.every((event) => event.type === 'data' && (selector === 'all' || event.stream === selector)),
    );
  }
  assert.equal(monitor.listenerCount(), 0);
  assert.equal(monitor.watchCount, 0);
  assert.deepEqual(errors, []);
});

test('a follower of a job that is not watched reads to the end and ends', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'echo done; echo warn >&2']);
  await job.exited;
  const monitor = new OutputMonitor({ capBytes: 1024 });
  await monitor.finish('old', dir);
  const events = await collect(
    followOutput(monitor, dir, 'old', { selector: 'all', cursor: 3, batchBytes: 2 }),
  );
  assert.equal(bytesOf(events).toString(), 'e\nwarn\n');
  assert.equal(events.at(-1)?.cursor, 10);
});

test('breaking out of a follow or aborting it leaves no listener behind', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024 });
  t.after(() => monitor.close());
  // Prints one line, then waits for stdin to close: the job stays running while the test follows it.
  const job = await startJob(dir, ['sh', '-c', 'echo ready; read -r _'], 'pipe');
  monitor.watch('idle', dir);

  for await (const batch of followOutput(monitor, dir, 'idle', { selector: 'stdout', cursor: 0 })) {
    assert.equal(bytesOf(batch).toString(), 'ready\n');
    assert.equal(monitor.listenerCount('idle'), 1);
    break;
  }
  assert.equal(monitor.listenerCount('idle'), 0);

  // Aborted while the next batch is pending (reading, or waiting for output that is not coming).
  const waiting = new AbortController();
  const follow = followOutput(monitor, dir, 'idle', { selector: 'all', cursor: 0, signal: waiting.signal });
  assert.equal((await follow.next()).done, false);
  const pending = follow.next();
  assert.equal(monitor.listenerCount('idle'), 1);
  waiting.abort();
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.equal(monitor.listenerCount('idle'), 0);
  assert.equal(getEventListeners(waiting.signal, 'abort').length, 0);

  // Aborted between batches, while the consumer holds one: released at once.
  const holding = new AbortController();
  const held = followOutput(monitor, dir, 'idle', { selector: 'stdout', cursor: 0, signal: holding.signal });
  assert.equal((await held.next()).done, false);
  assert.equal(monitor.listenerCount('idle'), 1);
  holding.abort();
  assert.equal(monitor.listenerCount('idle'), 0);
  assert.deepEqual(await held.next(), { done: true, value: undefined });
  assert.equal(getEventListeners(holding.signal, 'abort').length, 0);

  job.child.stdin!.end();
  await job.exited;
  await monitor.finish('idle');
});

test('following from a cursor past the end is a CursorError', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'echo hi']);
  await job.exited;
  const monitor = new OutputMonitor({ capBytes: 1024 });
  await assert.rejects(
    collect(followOutput(monitor, dir, 'x', { selector: 'stdout', cursor: 4 })),
    CursorError,
  );
});

test('a follower across the moment the job ends gets every byte once, in order', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 64 * 1024 * 1024, onError: (err) => assert.fail(err) });
  t.after(() => monitor.close());
  // Writes, waits for a line on stdin, then writes on both streams and exits.
  const script =
    'head -c 100000 /dev/urandom; read go; head -c 300000 /dev/urandom; head -c 100000 /dev/urandom >&2';
  const job = await startJob(dir, ['sh', '-c', script], 'pipe');
  monitor.watch('ending', dir);
  const views = ['stdout', 'all'] as const;
  // Each takes one batch before the job goes on, and is mid-view when it ends.
  const paused = views.map((selector) =>
    followOutput(monitor, dir, 'ending', { selector, cursor: 0, batchBytes: 4096 }),
  );
  const firsts = await Promise.all(paused.map((follower) => follower.next()));
  // This one reads all along, so it is caught up and waiting when the end comes.
  const steady = collect(
    followOutput(monitor, dir, 'ending', { selector: 'all', cursor: 0, batchBytes: 65536 }),
  );
  job.child.stdin!.end('go\n');
  assert.equal(await job.exited, 0);
  await monitor.finish('ending');
  const rests = await Promise.all(
    paused.map((follower) => collect({ [Symbol.asyncIterator]: () => follower })),
  );

  const stdout = await readFile(join(dir, 'stdout'));
  const stderr = await readFile(join(dir, 'stderr'));
  assert.equal(stdout.length, 400000);
  assert.equal(stderr.length, 100000);
  for (const [i, selector] of views.entries()) {
    const events = [...(firsts[i]!.value ?? []), ...rests[i]!];
    assert.ok(bytesOf(events, 'stdout').equals(stdout), selector);
    if (selector === 'all') assert.ok(bytesOf(events, 'stderr').equals(stderr));
    // Cursors rise by exactly each event's length: no gap, no duplicate.
    let cursor = 0;
    for (const e of events) {
      assert.equal(e.type, 'data');
      if (e.type === 'data') cursor += e.data.length;
      assert.equal(e.cursor, cursor);
    }
  }
  const all = await steady;
  assert.ok(bytesOf(all).equals(Buffer.concat([stdout, stderr])));
  assert.equal(monitor.listenerCount(), 0);
});

test('sixty followers of a live job (wakeups spaced out) each get every byte, in order', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024 * 1024, onError: (err) => assert.fail(err) });
  t.after(() => monitor.close());
  const job = await startJob(dir, ['sh', '-c', CHATTY]);
  monitor.watch('crowd', dir);
  const followers = Array.from({ length: 60 }, (_, i) =>
    collect(followOutput(monitor, dir, 'crowd', { selector: i % 2 ? 'all' : 'stdout', cursor: 0 })),
  );
  assert.equal(monitor.listenerCount('crowd'), 60);
  assert.equal(await job.exited, 0);
  await monitor.finish('crowd');
  const received = await Promise.all(followers);
  const stdout = await readFile(join(dir, 'stdout'));
  const stderr = await readFile(join(dir, 'stderr'));
  for (const [i, events] of received.entries()) {
    assert.ok(bytesOf(events, 'stdout').equals(stdout), `follower ${i}`);
    if (i % 2) assert.ok(bytesOf(events, 'stderr').equals(stderr), `follower ${i}`);
  }
  assert.equal(monitor.listenerCount(), 0);
});
