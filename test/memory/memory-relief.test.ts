import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRelief } from '../../src/memory/memory-relief.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

test('memory relief collects once per quiet spell, after the last activity', () => {
  const clock = new ManualClock();
  let collections = 0;
  const relief = new MemoryRelief(clock, () => collections++, { quietMs: 2000 });
  relief.activity();
  clock.advance(1500);
  relief.activity(); // still busy: the quiet spell starts again
  clock.advance(1000);
  assert.equal(collections, 0);
  clock.advance(1000);
  assert.equal(collections, 1);
  clock.advance(10_000);
  assert.equal(collections, 1, 'not again without new activity');
  relief.activity();
  relief.close();
  clock.advance(10_000);
  assert.equal(collections, 1, 'nothing after close');
});

test('memory relief waits while busy, until the next quiet spell', () => {
  const clock = new ManualClock();
  let collections = 0;
  let busy = true;
  const relief = new MemoryRelief(clock, () => collections++, { quietMs: 2000, busy: () => busy });
  relief.activity();
  clock.advance(5000);
  assert.equal(collections, 0, 'not while busy');
  busy = false;
  clock.advance(5000);
  assert.equal(collections, 0, 'nor later on its own');
  relief.activity(); // the end of what kept it busy
  clock.advance(2000);
  assert.equal(collections, 1);
});

test('memory relief arms nothing once closed: jobs that end while the server closes', () => {
  const clock = new ManualClock();
  let collections = 0;
  const relief = new MemoryRelief(clock, () => collections++, { quietMs: 2000 });
  relief.close();
  relief.activity();
  clock.advance(10_000);
  assert.equal(collections, 0);
});
