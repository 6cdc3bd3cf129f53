import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiHarness, addUserToken, type JobJson, openApi } from './api-harness.ts';

describe('REST API: GET /v1/jobs/{id} of a finished job', () => {
  let h: ApiHarness;
  let alice: Record<string, string> = {};
  let bob: Record<string, string> = {};
  before(async () => {
    h = await openApi();
    alice = { authorization: `Bearer ${await addUserToken(h, 'alice')}` };
    bob = { authorization: `Bearer ${await addUserToken(h, 'bob')}` };
  });
  after(() => h.destroy());

  it('answers the same JSON each time (made once), and still 404 to another user', async () => {
    const { body: submitted } = await h.json<JobJson>('/v1/jobs', {
      body: { command: 'echo', args: ['kept'] },
      headers: alice,
    });
    await (await h.api(`/v1/jobs/${submitted.id}/output?follow=true`, { headers: alice })).arrayBuffer();
    const first = await h.api(`/v1/jobs/${submitted.id}`, { headers: alice });
    const second = await h.api(`/v1/jobs/${submitted.id}`, { headers: alice });
    assert.equal(second.status, 200);
    assert.match(second.headers.get('content-type') ?? '', /^application\/json/);
    const text = await second.text();
    assert.equal(text, await first.text());
    const job = JSON.parse(text) as JobJson;
    assert.deepEqual(
      [job.id, job.status, job.owner, job.outputBytes.stdout],
      [submitted.id, 'succeeded', 'alice', 5],
    );
    assert.equal((await h.json(`/v1/jobs/${submitted.id}`, { headers: bob })).status, 404);
    // Deleted, it is gone from what is kept at hand too.
    assert.equal((await h.api(`/v1/jobs/${submitted.id}`, { method: 'DELETE', headers: alice })).status, 200);
    assert.equal((await h.json(`/v1/jobs/${submitted.id}`, { headers: alice })).status, 404);
  });
});
