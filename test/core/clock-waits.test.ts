import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Clock, clockDeadline, pauseOn, steadyMs } from '../../src/core/clock.ts';
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

/** Timeouts and intervals that hold the process open (a ManualClock sets none). */
function heldOpen(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

describe('pauseOn', () => {
  it('holds the process open while it pauses, the clock timer alone would not', () => {
    const clock = new ManualClock();
    const before = heldOpen();
    const pause = pauseOn(clock, 100);
    assert.equal(heldOpen(), before + 1);
    clock.advance(100);
    return pause;
  });

  it('rejects at once, and holds nothing, when the clock cannot set its timer', async () => {
    const broken = {
      now: () => new Date(),
      monotonicMs: () => 0,
      setTimer: () => assert.fail('no timers here'),
    };
    const before = heldOpen();
    await assert.rejects(async () => pauseOn(broken, 100), /no timers here/);
    assert.equal(heldOpen(), before);
  });

  it('resolves when the clock has moved on by the pause, not before', async () => {
    const clock = new ManualClock();
    const before = heldOpen();
    let done = false;
    const pause = pauseOn(clock, 100).then(() => (done = true));
    clock.advance(99);
    await Promise.resolve();
    assert.equal(done, false);
    clock.advance(1);
    await pause;
    assert.equal(clock.pending, 0);
    assert.equal(heldOpen(), before, 'what held the process open while it paused is gone');
  });

  it("rejects with the signal's reason when it aborts, and leaves no timer behind", async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const before = heldOpen();
    const pause = pauseOn(clock, 100, controller.signal);
    controller.abort(new Error('stopped by the reader'));
    await assert.rejects(pause, /stopped by the reader/);
    assert.equal(clock.pending, 0);
    assert.equal(heldOpen(), before);
    // An already aborted signal: no pause at all.
    await assert.rejects(pauseOn(clock, 100, controller.signal), /stopped by the reader/);
    assert.equal(clock.pending, 0);
  });
});

describe('steadyMs', () => {
  it("reads a clock's monotonicMs, or its now() when it has none (a clock written before it)", () => {
    const clock = new ManualClock(new Date(5000));
    assert.equal(steadyMs(clock), 5000);
    const older: Clock = { now: () => new Date(7000), setTimer: clock.setTimer.bind(clock) };
    assert.equal(steadyMs(older), 7000);
    const steady: Clock = { ...older, monotonicMs: () => 42 };
    assert.equal(steadyMs(steady), 42);
  });
});
