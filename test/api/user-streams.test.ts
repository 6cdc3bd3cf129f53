import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobworkerError } from '../../src/core/errors.ts';
import { UserStreams } from '../../src/service/user-streams.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

describe('UserStreams', () => {
  it("ends a hold at its token's expiry with the error that says so, and forgets it", () => {
    const clock = new ManualClock();
    const streams = new UserStreams(clock);
    const at = clock.now().getTime() + 1000;
    const expiring = streams.take('kim', 'output', 't1', at);
    const lasting = streams.take('kim', 'events', 't2');
    clock.advance(999);
    assert.equal(expiring.signal.aborted, false);
    clock.advance(1);
    assert.equal(expiring.signal.aborted, true);
    const reason = expiring.signal.reason as JobworkerError;
    assert.equal(reason.code, 'UNAUTHENTICATED');
    assert.match(reason.message, /the token of user kim it was opened with expired/);
    assert.deepEqual([streams.count('kim', 'output'), streams.count('kim', 'events')], [0, 1]);
    expiring.release();
    lasting.release();
    assert.equal(streams.users, 0);
  });

  it('ends a hold taken with a token expired already before returning it', () => {
    const clock = new ManualClock();
    const streams = new UserStreams(clock);
    const hold = streams.take('kim', 'events', 't1', clock.now().getTime());
    assert.equal(hold.signal.aborted, true);
    assert.equal(streams.users, 0);
    assert.equal(clock.pending, 0);
  });

  it("ends a hold at its token's expiry on the wall clock, however that was stepped meanwhile", () => {
    // The wall clock stepped back half a second after the stream opened (NTP): the timer's wait
    // ends before the token's expiry, which is read again.
    class SteppedClock extends ManualClock {
      stepMs = 0;
      override now(): Date {
        return new Date(super.now().getTime() + this.stepMs);
      }
    }
    const clock = new SteppedClock();
    const streams = new UserStreams(clock);
    const hold = streams.take('kim', 'output', 't1', clock.now().getTime() + 1000);
    clock.stepMs = -500;
    clock.advance(1000);
    assert.equal(hold.signal.aborted, false, 'the token is valid for another 500 ms by the wall clock');
    clock.advance(500);
    assert.equal(hold.signal.aborted, true);
    assert.equal(clock.pending, 0);
  });

  it('clears the expiry of a hold given back, or ended by a revocation, before it', () => {
    const clock = new ManualClock();
    const streams = new UserStreams(clock);
    const later = clock.now().getTime() + 60_000;
    const released = streams.take('kim', 'output', 't1', later);
    const revoked = streams.take('kim', 'output', 't1', later);
    assert.equal(clock.pending, 2);
    released.release();
    streams.end('kim', 't1');
    assert.equal(clock.pending, 0, 'no timer left for either');
    assert.match(
      (revoked.signal.reason as JobworkerError).message,
      /credentials of user kim it was opened with changed/,
    );
    assert.equal(streams.users, 0);
  });
});
