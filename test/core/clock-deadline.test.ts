import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clockDeadline } from '../../src/core/clock.ts';
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
