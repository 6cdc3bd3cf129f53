import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiHarness, type JobJson, openApi } from './api-harness.ts';

type Job = JobJson & { timeoutMs: number | null };

describe('REST API: the server-wide default timeout', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { defaultTimeout: '300ms' });
  });
  after(() => h.destroy());

  it('a job that sets no timeout gets the default, on the job, and ends timed_out by it', async () => {
    const created = await h.json<Job>('/v1/jobs', { body: { command: 'sleep', args: ['60'] } });
    assert.equal(created.status, 201);
    assert.equal(created.body.timeoutMs, 300, 'recorded on the job, so status shows it');
    await h.api(`/v1/jobs/${created.body.id}/output?follow=true`).then((r) => r.text()); // until it ends
    const ended = await h.json<Job>(`/v1/jobs/${created.body.id}`);
    assert.equal(ended.body.status, 'timed_out');
    assert.match(ended.body.reason ?? '', /^timed out after 300 ms: /);
  });

  it("a job's own timeout wins, and an explicit null keeps none", async () => {
    const own = await h.json<Job>('/v1/jobs', { body: { command: 'true', timeoutMs: 5000 } });
    assert.equal(own.body.timeoutMs, 5000);
    const none = await h.json<Job>('/v1/jobs', { body: { command: 'true', timeoutMs: null } });
    assert.equal(none.body.timeoutMs, null);
    for (const job of [own.body, none.body]) {
      await h.api(`/v1/jobs/${job.id}/output?follow=true`).then((r) => r.text());
      assert.equal((await h.json<Job>(`/v1/jobs/${job.id}`)).body.status, 'succeeded');
    }
  });
});
