import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobworkerError } from '../../src/core/errors.ts';
import { openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const me = { user: 'tester' };
const unavailable = () => new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (injected)');

/** Polls `check` every 10 ms until it holds, for at most 20 s (a condition, not a sleep). */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("the engine and its claims' ends", () => {
  it('a store that could not be read while a claim was checked gives the claim back: the job runs, not recorded failed', async () => {
    const clock = new ManualClock();
    let checks = 0;
    const h = await openHarness({
      clock,
      // The account's check reads the store (the pool's accounts): a blip fails the first.
      checkAccount: async () => {
        if (checks++ === 0) throw unavailable();
      },
    });
    try {
      const job = await h.engine.start({ command: 'true' }, me);
      await until('the first launch to end', () => checks === 1 && h.engine.drainState.running === 0);
      const back = (await h.store.getJob(job.id))!;
      assert.deepEqual([back.status, back.exit], ['queued', null], 'not recorded failed');
      // Claimed again a moment later (a pass at once would find the store still away).
      clock.advance(1000);
      const done = await h.engine.waitFor(job.id, AbortSignal.timeout(20_000));
      assert.deepEqual([done.status, done.attempt, done.retriedAs], ['succeeded', 1, null]);
      assert.equal(checks, 2);
    } finally {
      await h.destroy();
    }
  });
});
