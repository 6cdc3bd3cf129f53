import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitForFileText } from '../helpers/wait.ts';
import { type ApiHarness, addUserToken, type JobJson, openApi, startJob } from './api-harness.ts';

type ErrorJson = { error: { code: string; message: string; field?: string } };

describe('REST API: deleting jobs, pruning, and resolving what people type', () => {
  let h: ApiHarness;
  let alice: Record<string, string> = {};
  let bob: Record<string, string> = {};
  before(async () => {
    h = await openApi();
    alice = { authorization: `Bearer ${await addUserToken(h, 'alice')}` };
    bob = { authorization: `Bearer ${await addUserToken(h, 'bob')}` };
  });
  after(() => h.destroy());

  /** Starts a job as `headers`' user and waits for it to end. */
  async function finished(
    spec: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<JobJson> {
    const { status, body } = await h.json<JobJson>('/v1/jobs', { body: spec, headers });
    assert.equal(status, 201, JSON.stringify(body));
    await (await h.api(`/v1/jobs/${body.id}/output?follow=true`, { headers })).arrayBuffer();
    return (await h.json<JobJson>(`/v1/jobs/${body.id}`, { headers })).body;
  }

  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );

  it('DELETE /v1/jobs/{id} deletes a finished job and its output; GET then answers 404', async () => {
    const job = await finished({ command: 'echo', args: ['bye'] });
    const dir = join(h.dataDir, 'jobs', job.id);
    assert.ok(await exists(dir));
    const deleted = await h.json<JobJson>(`/v1/jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.id, job.id);
    assert.equal(deleted.body.status, 'succeeded');
    assert.equal((await h.json(`/v1/jobs/${job.id}`)).status, 404);
    assert.equal((await h.json(`/v1/jobs/${job.id}/output`)).status, 404);
    assert.equal(await exists(dir), false, 'its directory is gone');
    const again = await h.json<ErrorJson>(`/v1/jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
  });

  it('DELETE answers 409 NOT_FINISHED with the status while a job runs, and deletes nothing', async () => {
    const job = await startJob(h, { command: 'sh', args: ['-c', 'echo ready; exec sleep 60'] });
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    const refused = await h.json<ErrorJson>(`/v1/jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'NOT_FINISHED');
    assert.match(refused.body.error.message, /is running: only a finished job can be deleted/);
    assert.equal((await h.json<JobJson>(`/v1/jobs/${job.id}`)).body.status, 'running');
    await h.json(`/v1/jobs/${job.id}/stop`, { body: { graceMs: 0 } });
    await (await h.api(`/v1/jobs/${job.id}/output?follow=true`)).arrayBuffer();
    assert.equal((await h.json(`/v1/jobs/${job.id}`, { method: 'DELETE' })).status, 200);
  });

  it("a user deletes only its own jobs: another user's job answers 404 like an unknown id", async () => {
    const bobs = await finished({ command: 'true' }, bob);
    const asAlice = await h.json<ErrorJson>(`/v1/jobs/${bobs.id}`, { method: 'DELETE', headers: alice });
    const unknown = await h.json<ErrorJson>('/v1/jobs/01900000-0000-7000-8000-000000000000', {
      method: 'DELETE',
      headers: alice,
    });
    assert.equal(asAlice.status, 404);
    assert.equal(asAlice.body.error.code, unknown.body.error.code);
    assert.equal(
      asAlice.body.error.message.replace(bobs.id, 'ID'),
      unknown.body.error.message.replace(/\S+$/, 'ID'),
    );
    assert.equal((await h.json(`/v1/jobs/${bobs.id}`, { headers: bob })).status, 200, 'still there');
    assert.equal((await h.json(`/v1/jobs/${bobs.id}`, { method: 'DELETE', headers: bob })).status, 200);
  });

  it("POST /v1/prune deletes a user's own finished jobs, or everyone's for an admin", async () => {
    const alices = [await finished({ command: 'true' }, alice), await finished({ command: 'true' }, alice)];
    const bobs = await finished({ command: 'true' }, bob);
    const running = await startJob(h, { command: 'sh', args: ['-c', 'echo ready; exec sleep 60'] });
    await waitForFileText(join(h.dataDir, 'jobs', running.id, 'stdout'), 'ready');

    const recent = await h.json<{ deleted: number }>('/v1/prune', {
      body: { olderThanMs: 3_600_000 },
      headers: alice,
    });
    assert.deepEqual(recent.body, { deleted: 0 }, 'none finished an hour ago');
    const own = await h.json<{ deleted: number }>('/v1/prune', { body: {}, headers: alice });
    assert.deepEqual(own, { status: 200, body: { deleted: 2 } });
    for (const job of alices) assert.equal((await h.json(`/v1/jobs/${job.id}`)).status, 404);
    assert.equal((await h.json(`/v1/jobs/${bobs.id}`)).status, 200, "bob's job is not alice's to prune");

    const bad = await h.json<ErrorJson>('/v1/prune', { body: { olderThanMs: -1 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'olderThanMs');
    const all = await h.json<{ deleted: number }>('/v1/prune', { body: {} });
    assert.ok(all.body.deleted >= 1);
    assert.equal((await h.json(`/v1/jobs/${bobs.id}`)).status, 404);
    assert.equal(
      (await h.json<JobJson>(`/v1/jobs/${running.id}`)).body.status,
      'running',
      'active jobs stay',
    );
    await h.json(`/v1/jobs/${running.id}/stop`, { body: { graceMs: 0 } });
  });

  it('GET /v1/jobs/resolve finds a job by id prefix, name or `last`, only among what the caller may see', async () => {
    const a1 = await startJob(h, { command: 'true', name: 'nightly' });
    const { body: a2 } = await h.json<JobJson>('/v1/jobs', {
      body: { command: 'true', name: 'backfill' },
      headers: alice,
    });
    const { body: a3 } = await h.json<JobJson>('/v1/jobs', {
      body: { command: 'true', name: 'dup' },
      headers: alice,
    });
    const { body: a4 } = await h.json<JobJson>('/v1/jobs', {
      body: { command: 'true', name: 'dup' },
      headers: alice,
    });
    const resolve = (ref: string, headers: Record<string, string> = {}) =>
      h.json<JobJson & ErrorJson>(`/v1/jobs/resolve?ref=${encodeURIComponent(ref)}`, { headers });

    assert.equal((await resolve(a2.id.slice(0, 30), alice)).body.id, a2.id, 'a unique prefix');
    assert.equal((await resolve(a2.id.toUpperCase(), alice)).body.id, a2.id, 'a whole id, any case');
    assert.equal((await resolve('backfill', alice)).body.id, a2.id, 'a name one of her jobs has');
    assert.equal((await resolve('last', alice)).body.id, a4.id, 'her newest job');
    assert.equal((await resolve('last')).body.id, a1.id, "the admin's own newest job");

    // Ids hold their creation time first: ids made within hours share their first 6 characters.
    const shared = a3.id.slice(0, 6);
    assert.equal(a4.id.slice(0, 6), shared);
    const ambiguous = await resolve(shared, alice);
    assert.equal(ambiguous.status, 409);
    assert.equal(ambiguous.body.error.code, 'AMBIGUOUS');
    assert.ok(ambiguous.body.error.message.includes(a3.id) && ambiguous.body.error.message.includes(a4.id));
    assert.ok(!ambiguous.body.error.message.includes(a1.id), "the admin's job is not listed to alice");
    const dup = await resolve('dup', alice);
    assert.equal(dup.body.error.code, 'AMBIGUOUS');
    assert.match(dup.body.error.message, /^Name "dup" matches 2 jobs: /);

    const hidden = await resolve(a1.id.slice(0, 30), alice);
    assert.equal(hidden.status, 404, "another user's id prefix resolves like an unknown one");
    assert.equal((await resolve(a1.id, alice)).status, 404);
    assert.equal((await resolve('nightly', alice)).status, 404, "another user's job name");
    const short = await resolve(a2.id.slice(0, 5), alice);
    assert.equal(short.status, 404);
    assert.match(short.body.error.message, /at least 6 characters/);
    const none = await resolve('last', bob);
    assert.equal(none.status, 404, 'bob has no job left: the prune above took them');
    assert.match(none.body.error.message, /^No job of yours yet/);
    const list = await h.json<{ jobs: JobJson[] }>(`/v1/jobs?idPrefix=${shared}`, { headers: alice });
    assert.ok(list.body.jobs.every((j) => j.owner === 'alice') && list.body.jobs.length >= 2);
  });
});
