import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  FAN_OUT_FOLLOWERS,
  OutputListeners,
  WAKE_MS_PER_FOLLOWER,
} from '../../src/output/output-listeners.ts';
import type { OutputNotice } from '../../src/output/output-types.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const fail = (err: unknown): void => assert.fail(String(err));

function listen(listeners: OutputListeners, count: number): OutputNotice[][] {
  const heard = Array.from({ length: count }, () => [] as OutputNotice[]);
  for (const notices of heard) listeners.add((notice) => notices.push(notice));
  return heard;
}

test('a few followers are told of each growth at once', () => {
  const listeners = new OutputListeners(new ManualClock(), fail);
  const heard = listen(listeners, FAN_OUT_FOLLOWERS - 1);
  listeners.notify('output:grow');
  listeners.notify('output:grow');
  for (const notices of heard) assert.deepEqual(notices, ['output:grow', 'output:grow']);
});

test('many followers: growths between two wakeups are told once, when the gap has passed', () => {
  const clock = new ManualClock();
  const listeners = new OutputListeners(clock, fail);
  const heard = listen(listeners, 1000);
  const gap = 1000 * WAKE_MS_PER_FOLLOWER;
  listeners.notify('output:grow');
  assert.deepEqual(heard[0], ['output:grow'], 'the first growth is told at once');
  listeners.notify('output:grow');
  listeners.notify('output:grow');
  assert.equal(heard[0]!.length, 1, 'the next ones wait');
  clock.advance(gap - 1);
  assert.equal(heard[0]!.length, 1);
  clock.advance(1);
  for (const notices of heard) assert.deepEqual(notices, ['output:grow', 'output:grow']);
  // Once the gap has passed since the last wakeup, a growth is told at once again.
  clock.advance(gap);
  listeners.notify('output:grow');
  assert.equal(heard[999]!.length, 3);
});

test('the end is told at once, after no growth left waiting, and only once', () => {
  const clock = new ManualClock();
  const listeners = new OutputListeners(clock, fail);
  const heard = listen(listeners, FAN_OUT_FOLLOWERS);
  listeners.notify('output:grow');
  listeners.notify('output:grow');
  listeners.notify('output:finish');
  clock.advance(60_000);
  for (const notices of heard) assert.deepEqual(notices, ['output:grow', 'output:finish']);
});

test('a listener that throws is reported and the others are still told', () => {
  const errors: unknown[] = [];
  const listeners = new OutputListeners(new ManualClock(), (err) => errors.push(err));
  listeners.add(() => {
    throw new Error('boom');
  });
  const heard = listen(listeners, 1);
  listeners.notify('output:grow');
  assert.deepEqual(heard[0], ['output:grow']);
  assert.equal((errors[0] as Error).message, 'boom');
});

test('clear forgets the listeners and a wakeup waiting', () => {
  const clock = new ManualClock();
  const listeners = new OutputListeners(clock, fail);
  const heard = listen(listeners, FAN_OUT_FOLLOWERS);
  listeners.notify('output:grow');
  listeners.notify('output:grow');
  listeners.clear();
  clock.advance(60_000);
  assert.equal(listeners.size, 0);
  assert.deepEqual(heard[0], ['output:grow']);
});
