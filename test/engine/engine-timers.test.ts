import assert from 'node:assert/strict';
import { after, describe, it, mock } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const me = { user: 'tester' };
const DAY = 24 * 3600 * 1000;
/** The longest delay setTimeout honours; anything longer it clamps to 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

describe('engine timers go through the injected clock', () => {
  let h: Harness | undefined;
  after(() => h?.destroy());

  it('defect 1: a 30-day timeout does not fire at once, and fires when 30 days have passed', async () => {
    const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
    h = await openHarness({ clock });
    // A job that ends by itself in a second: before the fix its 30-day timeout fired after 1 ms.
    const short = await startRunning(h.engine, { command: 'sleep', args: ['1'], timeoutMs: 30 * DAY }, me);
    clock.advance(29 * DAY);
    const done = await h.engine.waitFor(short.id);
    assert.equal(done.status, 'succeeded', done.exit?.reason);

    const long = await startRunning(h.engine, { command: 'sleep', args: ['600'], timeoutMs: 30 * DAY }, me);
    clock.advance(30 * DAY);
    const timedOut = await h.engine.waitFor(long.id);
    assert.equal(timedOut.status, 'timed_out');
    assert.match(timedOut.exit?.reason ?? '', /^timed out after 720 h: /);
  });

  it('defect 1: the system clock waits longer than setTimeout can, in steps', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const fired = mock.fn();
    systemClock.setTimer(fired, 30 * DAY);
    t.mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired.mock.callCount(), 0, 'fired at the 24.8-day clamp');
    t.mock.timers.tick(30 * DAY - MAX_TIMER_MS - 1);
    assert.equal(fired.mock.callCount(), 0, 'fired early');
    t.mock.timers.tick(1);
    assert.equal(fired.mock.callCount(), 1);
  });

  it('a cleared long timer never fires, whichever step it is in', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const fired = mock.fn();
    const timer = systemClock.setTimer(fired, 60 * DAY);
    t.mock.timers.tick(MAX_TIMER_MS + 10);
    timer.clear();
    t.mock.timers.tick(60 * DAY);
    assert.equal(fired.mock.callCount(), 0);
  });
});
