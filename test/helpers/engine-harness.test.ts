import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openHarness } from './engine-harness.ts';

const COUNTER = new URL('../fixtures/counter.sh', import.meta.url).pathname;

describe('the engine test harness', () => {
  it('stops the jobs a test left running when it is destroyed', async () => {
    const h = await openHarness();
    let destroyed = false;
    try {
      // counter.sh without a count runs until it is stopped.
      const job = await h.engine.start({ command: COUNTER }, { user: 'tester' });
      for await (const event of h.engine.follow(job.id, { selector: 'stdout', cursor: 0 })) {
        if (event.type === 'output') break; // its first line: it runs
      }
      const running = await h.engine.get(job.id);
      assert.equal(running.status, 'running');
      const pid = running.process?.pid;
      assert.ok(pid !== undefined);
      await h.destroy();
      destroyed = true;
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
    } finally {
      if (!destroyed) await h.destroy();
    }
  });
});
