import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TaskQueue } from '../../src/tasks/task-queue.ts';

interface Entry {
  readonly n: number;
  cancelled: boolean;
  readonly blocking: boolean;
}

const entries = (count: number, blocking = false): Entry[] =>
  Array.from({ length: count }, (_, n) => ({ n, cancelled: false, blocking }));

test('takes the first ready entry in order, passing over one not ready and dropping cancelled ones', () => {
  const queue = new TaskQueue<Entry>((e) => e.cancelled);
  const [blocking] = entries(1, true);
  const [a, b, c] = entries(3);
  for (const e of [blocking!, a!, b!, c!]) queue.push(e);
  a!.cancelled = true;
  const polling = (e: Entry) => !e.blocking;
  assert.equal(queue.take(polling), b);
  assert.equal(queue.take(polling), c);
  assert.equal(queue.take(polling), undefined);
  assert.equal(
    queue.take(() => true),
    blocking,
  );
  assert.equal(queue.size, 0);
});

test('sweeps out cancelled entries held behind a head that waits, once they are half the queue', () => {
  const queue = new TaskQueue<Entry>((e) => e.cancelled);
  const [head] = entries(1, true);
  queue.push(head!);
  const waiting = entries(1000);
  for (const e of waiting) queue.push(e);
  // The head waits for a thread: nothing is taken, so nothing reaches the head to be dropped.
  for (const e of waiting.slice(0, 500)) {
    e.cancelled = true;
    queue.forget();
  }
  assert.equal(queue.size, 1001, 'fewer than half the queue: not swept yet');
  waiting[500]!.cancelled = true;
  queue.forget();
  assert.equal(queue.size, 500, 'swept: the head and the 499 still waiting');
  assert.equal(
    queue.take((e) => !e.blocking),
    waiting[501],
  );
  assert.equal(
    queue.take(() => true),
    head,
  );
});

test('keeps a few cancelled entries rather than sweeping a small queue at every cancel', () => {
  const queue = new TaskQueue<Entry>((e) => e.cancelled);
  const all = entries(10);
  for (const e of all) queue.push(e);
  for (const e of all.slice(0, 9)) {
    e.cancelled = true;
    queue.forget();
  }
  assert.equal(queue.size, 10);
  assert.equal(
    queue.take(() => true),
    all[9],
  );
  assert.equal(queue.size, 0);
});
