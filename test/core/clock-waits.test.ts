import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { atWallTime, type Clock, clockDeadline, pauseOn, steadyMs } from '../../src/core/clock.ts';
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

describe('atWallTime', () => {
  /** A manual clock whose wall time can be stepped back without its timers moving (NTP). */
  function steppable(start: Date) {
    const steady = new ManualClock(start);
    let offsetMs = 0;
    const clock: Clock = {
      now: () => new Date(steady.now().getTime() + offsetMs),
      setTimer: (fn, ms) => steady.setTimer(fn, ms),
    };
    return { clock, steady, stepBy: (ms: number) => (offsetMs += ms) };
  }

  it('calls at the wall time, armed again when the wall clock was set back meanwhile', () => {
    const t0 = new Date(Date.UTC(2026, 11, 6, 4, 0, 0));
    const { clock, steady, stepBy } = steppable(t0);
    let called = 0;
    atWallTime(clock, t0.getTime() + 10_000, () => called++);
    stepBy(-5_000);
    steady.advance(10_000);
    assert.equal(called, 0, 'the wall clock says 5 s are left');
    assert.equal(steady.pending, 1, 'armed again for them');
    steady.advance(5_000);
    assert.equal(called, 1);
    assert.equal(steady.pending, 0);
  });

  it('calls at once for a time already past, and never once cleared', () => {
    const clock = new ManualClock();
    let called = 0;
    atWallTime(clock, clock.now().getTime() - 1, () => called++);
    assert.equal(called, 1);
    const timer = atWallTime(clock, clock.now().getTime() + 1_000, () => called++);
    timer.clear();
    clock.advance(5_000);
    assert.equal(called, 1);
  });
});
