import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ApiHarness, addUserToken, type JobJson, openApi } from './api-harness.ts';

interface QueueJson {
  name: string;
  concurrency: number | null;
  maxWaiting: number | null;
  paused: boolean;
  running: number;
  waiting: number;
}
interface ErrorJson {
  error: { code: string; message: string; field?: string };
  job?: JobJson & Record<string, unknown>;
}
type Job = JobJson & Record<string, unknown>;

describe('REST API: queues and scheduling', () => {
  let h: ApiHarness;
  let alice = '';
  let bob = '';
  const asAlice = () => ({ authorization: `Bearer ${alice}` });
  const asBob = () => ({ authorization: `Bearer ${bob}` });
  before(async () => {
    h = await openApi();
    alice = await addUserToken(h, 'alice');
    bob = await addUserToken(h, 'bob');
  });
  after(() => h.destroy());

  it('PUT /v1/queues/{name} sets limits (admins only); GET lists and shows them', async () => {
    const set = await h.json<QueueJson>('/v1/queues/nightly', {
      method: 'PUT',
      body: { concurrency: 2, maxWaiting: 1, paused: true },
    });
    assert.equal(set.status, 200);
    assert.deepEqual(set.body, {
      name: 'nightly',
      concurrency: 2,
      maxWaiting: 1,
      paused: true,
      defaultLimits: {},
      maxLimits: {},
      isolation: null,
      running: 0,
      waiting: 0,
    });
    const denied = await h.json<ErrorJson>('/v1/queues/nightly', {
      method: 'PUT',
      body: { concurrency: 5 },
      headers: asAlice(),
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'FORBIDDEN');
    const shown = await h.json<QueueJson>('/v1/queues/nightly', { headers: asAlice() });
    assert.equal(shown.body.concurrency, 2, 'users may read settings, and the refused PUT changed nothing');
    const list = await h.json<{ queues: QueueJson[] }>('/v1/queues');
    assert.deepEqual(
      list.body.queues.map((q) => q.name),
      ['default', 'nightly'],
    );
    const fresh = await h.json<QueueJson>('/v1/queues/never-used');
    assert.deepEqual([fresh.status, fresh.body.concurrency, fresh.body.paused], [200, null, false]);

    for (const [body, field] of [
      [{ concurrency: 0 }, 'concurrency'],
      [{ maxWaiting: -1 }, 'maxWaiting'],
      [{ concurrency: 'two' }, 'concurrency'],
      [{ bogus: 1 }, 'bogus'],
    ] as const) {
      const bad = await h.json<ErrorJson>('/v1/queues/nightly', { method: 'PUT', body });
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.error.field, field);
    }
    const badName = await h.json<ErrorJson>('/v1/queues/-bad', { method: 'PUT', body: {} });
    assert.deepEqual([badName.status, badName.body.error.field], [400, 'name']);
  });

  it('a full queue answers 429 QUEUE_FULL and keeps nothing of the refused job', async () => {
    const first = await h.json<Job>('/v1/jobs', { body: { command: 'true', queue: 'nightly' } });
    assert.equal(first.status, 201);
    assert.equal(first.body.status, 'queued');
    assert.equal(first.body.waitingFor, 'queue');
    const jobsBefore = await readdir(join(h.dataDir, 'jobs'));
    const full = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', queue: 'nightly', name: 'x' },
    });
    assert.equal(full.status, 429);
    assert.equal(full.body.error.code, 'QUEUE_FULL');
    const named = await h.json<{ jobs: Job[] }>('/v1/jobs?name=x');
    assert.deepEqual(named.body.jobs, []);
    assert.deepEqual(await readdir(join(h.dataDir, 'jobs')), jobsBefore);
    // A stop of the queued job cancels it: 200, and it stays in history.
    const stopped = await h.json<Job>(`/v1/jobs/${first.body.id}/stop`, { body: {} });
    assert.equal(stopped.status, 200);
    assert.equal(stopped.body.status, 'cancelled');
    assert.equal(stopped.body.reason, 'cancelled by admin before it started');
    const again = await h.json<ErrorJson>(`/v1/jobs/${first.body.id}/stop`, { body: {} });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'ALREADY_FINISHED');
  });

  it('a duplicate dedupeKey is 409 DUPLICATE with the job, or 200 with it when asked', async () => {
    const spec = { command: 'sleep', args: ['600'], dedupeKey: 'backup' };
    const first = await h.json<Job>('/v1/jobs', { body: spec });
    assert.equal(first.status, 201);
    assert.equal(first.body.dedupeKey, 'backup');
    const dup = await h.json<ErrorJson>('/v1/jobs', { body: spec });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'DUPLICATE');
    assert.equal(dup.body.job?.id, first.body.id);
    const returned = await h.json<Job>('/v1/jobs', { body: { ...spec, onDuplicate: 'return' } });
    assert.deepEqual([returned.status, returned.body.id], [200, first.body.id]);
    await h.json(`/v1/jobs/${first.body.id}/stop`, { body: { graceMs: 0 } });
  });

  it("defect 10: dedupe keys are per owner: a user can neither take nor probe another user's key", async () => {
    const spec = { command: 'sleep', args: ['600'], dedupeKey: 'nightly' };
    const submit = (headers: Record<string, string>, body: object = spec) =>
      h.json<Job & ErrorJson>('/v1/jobs', { body, headers });
    // From alice's side: her key is hers, and a second submit of hers is a duplicate of her job.
    const alices = await submit(asAlice());
    assert.equal(alices.status, 201);
    const again = await submit(asAlice());
    assert.deepEqual(
      [again.status, again.body.error.code, again.body.job?.id],
      [409, 'DUPLICATE', alices.body.id],
    );
    // From bob's side: the same key is free in his scope; nothing says alice has it.
    const bobs = await submit(asBob());
    assert.equal(bobs.status, 201, JSON.stringify(bobs.body));
    assert.notEqual(bobs.body.id, alices.body.id);
    assert.deepEqual([alices.body.owner, alices.body.dedupeScope], ['alice', 'alice']);
    assert.equal(bobs.body.dedupeScope, 'bob');
    // Naming alice's scope is for admins only: 403, whatever alice holds, and nothing is created.
    for (const body of [
      { ...spec, dedupeScope: 'alice' },
      { ...spec, dedupeKey: 'free', dedupeScope: 'alice' },
    ]) {
      const denied = await submit(asBob(), body);
      assert.deepEqual(
        [denied.status, denied.body.error.code, denied.body.error.field],
        [403, 'FORBIDDEN', 'dedupeScope'],
      );
      assert.equal(denied.body.job, undefined);
    }
    const bobsJobs = await h.json<{ jobs: Job[] }>('/v1/jobs', { headers: asBob() });
    assert.deepEqual(
      bobsJobs.body.jobs.map((j) => j.id),
      [bobs.body.id],
    );
    // Naming one's own scope is the default spelled out.
    const ownScope = await submit(asBob(), { ...spec, dedupeScope: 'bob', onDuplicate: 'return' });
    assert.deepEqual([ownScope.status, ownScope.body.id], [200, bobs.body.id]);
    // An admin deduplicates in its own scope, or names a user's.
    const admins = await h.json<Job>('/v1/jobs', { body: spec });
    assert.deepEqual([admins.status, admins.body.dedupeScope], [201, 'admin']);
    const forAlice = await h.json<Job>('/v1/jobs', {
      body: { ...spec, dedupeScope: 'alice', onDuplicate: 'return' },
    });
    assert.deepEqual([forAlice.status, forAlice.body.id], [200, alices.body.id]);
    for (const job of [alices.body, bobs.body, admins.body]) {
      await h.json(`/v1/jobs/${job.id}/stop`, { body: { graceMs: 0 } });
      await h.api(`/v1/jobs/${job.id}/output?follow=true`).then((r) => r.text()); // until it ended
    }
    // Once alice's job ended, an admin's job in her scope holds her key: she learns only that it is taken.
    const held = await h.json<Job>('/v1/jobs', { body: { ...spec, dedupeScope: 'alice' } });
    assert.deepEqual([held.status, held.body.owner, held.body.dedupeScope], [201, 'admin', 'alice']);
    for (const body of [spec, { ...spec, onDuplicate: 'return' }]) {
      const hidden = await submit(asAlice(), body);
      assert.deepEqual([hidden.status, hidden.body.error.code], [409, 'DUPLICATE']);
      assert.equal(hidden.body.job, undefined);
      assert.ok(!hidden.body.error.message.includes(held.body.id));
    }
    await h.json(`/v1/jobs/${held.body.id}/stop`, { body: { graceMs: 0 } });
  });

  it('priority, delay, dependencies and retry show on the job; bad ones are 400 naming the field', async () => {
    const dep = await h.json<Job>('/v1/jobs', { body: { command: 'sleep', args: ['600'] } });
    const job = await h.json<Job>('/v1/jobs', {
      body: {
        command: 'true',
        priority: 7,
        delayMs: 3_600_000,
        after: [dep.body.id],
        retry: { attempts: 3, backoff: { initialMs: 10 } },
      },
    });
    assert.equal(job.status, 201);
    assert.equal(job.body.status, 'queued');
    assert.equal(job.body.waitingFor, 'dependencies');
    assert.equal(job.body.priority, 7);
    assert.deepEqual(job.body.after, [dep.body.id]);
    assert.equal(job.body.attempt, 1);
    assert.equal(job.body.maxAttempts, 3);
    assert.ok(Date.parse(String(job.body.runAt)) > Date.now() + 3_000_000);
    // Alice may not wait for the admin's job: it answers like an unknown one.
    const hidden = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', after: [dep.body.id] },
      headers: asAlice(),
    });
    assert.deepEqual([hidden.status, hidden.body.error.field], [400, 'after[0]']);
    assert.match(hidden.body.error.message, /No job with id/);
    for (const [body, field] of [
      [{ command: 'true', priority: 1001 }, 'priority'],
      [{ command: 'true', queue: 'a b' }, 'queue'],
      [{ command: 'true', delayMs: -5 }, 'delayMs'],
      [{ command: 'true', runAt: 'soon' }, 'runAt'],
      [{ command: 'true', retry: { attempts: 0 } }, 'retry.attempts'],
      [{ command: 'true', retry: { attempts: 2, backoff: { factor: 0.5 } } }, 'retry.backoff.factor'],
      [{ command: 'true', after: ['x'] }, 'after[0]'],
      [{ command: 'true', onDuplicate: 'merge' }, 'onDuplicate'],
    ] as const) {
      const bad = await h.json<ErrorJson>('/v1/jobs', { body });
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.error.field, field, JSON.stringify(bad.body));
    }
    await h.json(`/v1/jobs/${dep.body.id}/stop`, { body: { graceMs: 0 } });
    // Following a queued job waits until it starts or, as here, ends without starting.
    await (await h.api(`/v1/jobs/${job.body.id}/output?follow=true`)).arrayBuffer();
    const cancelled = await h.json<Job>(`/v1/jobs/${job.body.id}`);
    assert.equal(cancelled.body.status, 'cancelled');
  });

  it('POST /v1/jobs/{id}/pause and /resume freeze and thaw a running job', async () => {
    const job = await h.json<Job>('/v1/jobs', {
      body: { command: 'sleep', args: ['600'] },
      headers: asAlice(),
    });
    const paused = await h.json<Job>(`/v1/jobs/${job.body.id}/pause`, { method: 'POST', headers: asAlice() });
    assert.equal(paused.status, 200);
    assert.equal(paused.body.status, 'paused');
    assert.ok(paused.body.pausedAt);
    const twice = await h.json<ErrorJson>(`/v1/jobs/${job.body.id}/pause`, { method: 'POST' });
    assert.deepEqual([twice.status, twice.body.error.code], [409, 'ILLEGAL_TRANSITION']);
    const resumed = await h.json<Job>(`/v1/jobs/${job.body.id}/resume`, {
      method: 'POST',
      headers: asAlice(),
    });
    assert.deepEqual([resumed.status, resumed.body.status, resumed.body.pausedAt], [200, 'running', null]);
    const adminJob = await h.json<Job>('/v1/jobs', { body: { command: 'sleep', args: ['600'] } });
    const notHers = await h.json<ErrorJson>(`/v1/jobs/${adminJob.body.id}/pause`, {
      method: 'POST',
      headers: asAlice(),
    });
    assert.equal(notHers.status, 404);
    for (const id of [job.body.id, adminJob.body.id])
      await h.json(`/v1/jobs/${id}/stop`, { body: { graceMs: 0 } });
  });

  it('POST /v1/drain with wait answers once no job runs; /v1/undrain dispatches again', async () => {
    const gate = join(h.dataDir, 'drain-gate');
    const running = await h.json<Job>('/v1/jobs', {
      body: { command: 'sh', args: ['-c', `while [ ! -e '${gate}' ]; do sleep 0.01; done`] },
    });
    const denied = await h.json<ErrorJson>('/v1/drain', { body: {}, headers: asAlice() });
    assert.equal(denied.status, 403);
    const drain = await h.json<{ draining: boolean; running: number }>('/v1/drain', { body: {} });
    assert.equal(drain.body.draining, true);
    assert.ok(drain.body.running >= 1);
    const queued = await h.json<Job>('/v1/jobs', { body: { command: 'true' } });
    assert.equal(queued.body.status, 'queued');
    const waiting = h.json<{ draining: boolean; running: number }>('/v1/drain', { body: { wait: true } });
    await writeFile(gate, '');
    assert.deepEqual((await waiting).body, { draining: true, running: 0 });
    assert.equal((await h.json<Job>(`/v1/jobs/${running.body.id}`)).body.status, 'succeeded');
    const undrained = await h.json<{ draining: boolean }>('/v1/undrain', { method: 'POST' });
    assert.equal(undrained.body.draining, false);
    const state = await h.json<{ draining: boolean }>('/v1/drain');
    assert.equal(state.body.draining, false);
    const ran = await h.api(`/v1/jobs/${queued.body.id}/output?follow=true`);
    await ran.arrayBuffer();
    assert.equal((await h.json<Job>(`/v1/jobs/${queued.body.id}`)).body.status, 'succeeded');
  });
});
