import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clockDeadline, pauseOn } from '../../src/core/clock.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

describe('clockDeadline', () => {
  it('aborts its signal when the clock reaches the deadline, with a TimeoutError naming the wait', () => {
    const clock = new ManualClock();
    const deadline = clockDeadline(clock, 30_000);
    clock.advance(29_999);
    assert.equal(deadline.signal.aborted, false);
    clock.advance(1);
    assert.equal(deadline.signal.aborted, true);
    const reason = deadline.signal.reason as DOMException;
    assert.equal(reason.name, 'TimeoutError');
    assert.match(reason.message, /30000 ms/);
  });

  it('never aborts once cleared, however far the clock moves', () => {
    const clock = new ManualClock();
    const deadline = clockDeadline(clock, 10);
    deadline.clear();
    clock.advance(60_000);
    assert.equal(deadline.signal.aborted, false);
  });
});

describe('pauseOn', () => {
  it('resolves when the clock has moved on by the pause, not before', async () => {
    const clock = new ManualClock();
    let done = false;
    const pause = pauseOn(clock, 100).then(() => (done = true));
    clock.advance(99);
    await Promise.resolve();
    assert.equal(done, false);
    clock.advance(1);
    await pause;
    assert.equal(clock.pending, 0);
  });

  it("rejects with the signal's reason when it aborts, and leaves no timer behind", async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const pause = pauseOn(clock, 100, controller.signal);
    controller.abort(new Error('stopped by the reader'));
    await assert.rejects(pause, /stopped by the reader/);
    assert.equal(clock.pending, 0);
    // An already aborted signal: no pause at all.
    await assert.rejects(pauseOn(clock, 100, controller.signal), /stopped by the reader/);
    assert.equal(clock.pending, 0);
  });
});
