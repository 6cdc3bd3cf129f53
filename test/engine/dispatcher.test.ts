import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dispatcher } from '../../src/engine/dispatcher.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const T0 = new Date(Date.UTC(2026, 11, 6, 3, 0, 0));

/**
 * The store calls a dispatcher's pass makes for delayed jobs, held where the test says: its
 * `nextRunAt` answers only when released, as a query that began before another node's write.
 */
function delayStore() {
  const promoted: Date[] = [];
  let released = false;
  let release: (at: Date | null) => void = () => undefined;
  let asked: () => void = () => undefined;
  const askedOnce = new Promise<void>((resolve) => {
    asked = resolve;
  });
  let onPromote: (now: Date) => void = () => undefined;
  const store = {
    promoteDue: async (now: Date) => {
      promoted.push(now);
      onPromote(now);
      return 0;
    },
    // The first answer is held; later ones come at once, with nothing delayed.
    nextRunAt: () =>
      released
        ? Promise.resolve(null)
        : new Promise<Date | null>((resolve) => {
            release = (at) => {
              released = true;
              resolve(at);
            };
            asked();
          }),
    listReadyQueues: async () => [],
  } as unknown as JobStore;
  /** Resolves at the next `promoteDue`, with the time it was asked for. */
  const nextPromote = () =>
    new Promise<Date>((resolve) => {
      onPromote = resolve;
    });
  return { store, promoted, askedOnce, nextPromote, release: (at: Date | null) => release(at) };
}

describe('the dispatcher and delayed jobs', () => {
  it('keeps a due time told while its pass asked the store, whose answer came from before it', async () => {
    const clock = new ManualClock(T0);
    const held = delayStore();
    const dispatcher = new Dispatcher({
      store: held.store,
      node: 'n',
      clock,
      launchAll: () => [],
      releaseClaim: async () => undefined,
      batch: 16,
      nodeFree: () => 16,
      onError: (err) => assert.fail(err),
    });
    try {
      const pass = dispatcher.open();
      await held.askedOnce;
      // Another node delays a job while this pass waits for the store's answer, which does not
      // hold it yet: the notification must not be lost to that answer.
      const due = new Date(T0.getTime() + 30_000);
      dispatcher.noteDue(due);
      held.release(null);
      await pass;
      assert.equal(held.promoted.length, 1);
      // A timer is armed for the noted time, and its ringing alone makes the pass that promotes.
      assert.equal(clock.pending, 1, 'the timer for the noted time');
      const promotedAgain = held.nextPromote();
      clock.advance(29_999);
      assert.equal(held.promoted.length, 1, 'not before its time');
      clock.advance(1);
      assert.equal((await promotedAgain).getTime(), due.getTime());
    } finally {
      await dispatcher.close();
    }
  });
});
