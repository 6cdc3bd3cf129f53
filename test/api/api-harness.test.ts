import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURES, type JobJson, openApi, startJob } from './api-harness.ts';

describe('the API test harness', () => {
  it('stops the jobs a test left running when it is destroyed', async () => {
    const h = await openApi();
    let destroyed = false;
    try {
      // counter.sh without a count runs until it is stopped.
      const job = await startJob(h, { command: join(FIXTURES, 'counter.sh') });
      const res = await h.api(`/v1/jobs/${job.id}/output?follow=true`);
      const reader = res.body!.getReader();
      await reader.read(); // its first line: it runs
      await reader.cancel();
      const { body } = await h.json<JobJson & { pid: number | null }>(`/v1/jobs/${job.id}`);
      assert.equal(body.status, 'running');
      assert.ok(body.pid !== null);
      await h.destroy();
      destroyed = true;
      assert.throws(() => process.kill(body.pid!, 0), { code: 'ESRCH' });
    } finally {
      if (!destroyed) await h.destroy();
    }
  });
});
