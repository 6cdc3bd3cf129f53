import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { openHarness } from '../helpers/engine-harness.ts';

const caller = { user: 'tester' };

describe('a claimed batch is launched together', () => {
  it('one launch that fails: the others start in claim order, the failed one is recorded failed, no claim is left', async () => {
    const h = await openHarness();
    let planted: string | undefined;
    try {
      const { engine, store } = h;
      // Held back, so that one dispatch pass claims all of them as one batch.
      await engine.setQueue('batch', { paused: true });
      const jobs: Job[] = [];
      for (let i = 0; i < 6; i++) {
        jobs.push(await engine.start({ command: 'sh', args: ['-c', `echo ${i}`], queue: 'batch' }, caller));
      }
      // A real failure of one launch: a file stands where its io directory is made.
      const doomed = jobs[2]!;
      planted = engine.ioPaths(doomed.id).dir;
      await writeFile(planted, '');
      const started: string[] = [];
      engine.on('job:started', (job) => {
        if (job.spec.queue === 'batch') started.push(job.id);
      });
      await engine.setQueue('batch', { paused: false });
      const ended = await Promise.all(jobs.map((job) => engine.waitFor(job.id)));

      const failed = ended.find((job) => job.id === doomed.id)!;
      assert.equal(failed.status, 'failed');
      assert.match(failed.exit?.reason ?? '', /^failed to start: .* is not a directory$/);
      assert.deepEqual(
        ended.filter((job) => job.id !== doomed.id).map((job) => job.status),
        ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded'],
      );
      // Claim order is priority then arrival: here, the order of submission.
      assert.deepEqual(
        started,
        jobs.filter((job) => job.id !== doomed.id).map((job) => job.id),
      );
      assert.deepEqual(await store.listStarting('test-node'), [], 'no job is left claimed');
      // The failed launch lets its slot go just after its job is reported finished.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(engine.drainState.running, 0, 'no slot is held by a finished launch');
    } finally {
      await h.destroy();
      // In the io directory, outside the data directory the harness removes.
      if (planted) await rm(planted, { force: true });
    }
  });
});
