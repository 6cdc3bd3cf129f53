import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { type ApiHarness, openApi } from './api-harness.ts';

interface ErrorJson {
  error: { code: string; message: string; field?: string };
}

describe('REST API: how many queues (serve --max-queues)', () => {
  let h: Harness;
  let a: AppHarness;
  let admin = '';
  let alice = '';
  before(async () => {
    // `default` and two more.
    h = await openHarness({ maxQueues: 3 });
    a = await openApp(h);
    admin = await a.issue('root-admin', 'admin');
    alice = await a.issue('alice', 'user');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const call = async (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    token: string,
    body?: object,
  ) => {
    const res = await a.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { payload: body }),
    });
    return { status: res.statusCode, body: res.json() as Record<string, unknown> & ErrorJson };
  };
  /** Submits a job as alice and waits for its end. */
  const ran = async (queue: string) => {
    const { status, body } = await call('POST', '/v1/jobs', alice, { command: 'true', queue });
    assert.equal(status, 201, JSON.stringify(body));
    await h.engine.waitFor(body.id as string);
    return body.id as string;
  };
  const listed = async () =>
    ((await call('GET', '/v1/queues', alice)).body.queues as { name: string }[]).map((q) => q.name);

  it('refuses a job naming a new queue past the limit with 400 on `queue`; existing queues and an admin PUT go on', async () => {
    const q1 = await ran('q1');
    await ran('q2');
    const refused = await call('POST', '/v1/jobs', alice, { command: 'true', queue: 'q3' });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'VALIDATION_FAILED');
    assert.equal(refused.body.error.field, 'queue');
    assert.match(refused.body.error.message, /"q3" would be a new one/);
    assert.match(refused.body.error.message, /maximum of 3 queues/);
    assert.match(refused.body.error.message, /PUT \/v1\/queues\/q3/);
    assert.match(refused.body.error.message, /--max-queues N, JOBWORKER_MAX_QUEUES/);
    const q3Jobs = await call('GET', '/v1/jobs?queue=q3', admin);
    assert.deepEqual(q3Jobs.body.jobs, [], 'nothing stored');
    assert.deepEqual(await listed(), ['default', 'q1', 'q2']);

    await ran('q1');
    await ran('default');
    // An admin creates a queue explicitly: not limited, and its jobs are then admitted.
    const put = await call('PUT', '/v1/queues/q3', admin, { concurrency: 1 });
    assert.equal(put.status, 200);
    await ran('q3');
    assert.deepEqual(await listed(), ['default', 'q1', 'q2', 'q3']);
    // The job refused before left nothing behind: q1's job is still the first of its queue.
    assert.equal(
      ((await call('GET', '/v1/jobs?queue=q1', admin)).body.jobs as { id: string }[]).at(-1)?.id,
      q1,
    );
  });

  it('forgets a queue with its last job (DELETE, prune), keeps one with settings, and so makes room', async () => {
    const ids = ((await call('GET', '/v1/jobs?queue=q2', admin)).body.jobs as { id: string }[]).map(
      (j) => j.id,
    );
    assert.equal(ids.length, 1);
    assert.equal((await call('DELETE', `/v1/jobs/${ids[0]}`, alice)).status, 200);
    assert.deepEqual(await listed(), ['default', 'q1', 'q3']);

    // q1 goes with the last of its jobs; q3 has settings and stays without any.
    const q3 = ((await call('GET', '/v1/jobs?queue=q3', admin)).body.jobs as { id: string }[])[0]!.id;
    assert.equal((await call('DELETE', `/v1/jobs/${q3}`, alice)).status, 200);
    const pruned = await call('POST', '/v1/prune', alice, {});
    assert.equal(pruned.status, 200);
    assert.deepEqual(await listed(), ['default', 'q3']);
    assert.equal((await call('GET', '/v1/queues/q3', alice)).body.concurrency, 1);

    // Room for a new queue once more, up to the limit.
    await ran('q4');
    const refused = await call('POST', '/v1/jobs', alice, { command: 'true', queue: 'q5' });
    assert.deepEqual([refused.status, refused.body.error.field], [400, 'queue']);
  });
});

describe('runServer({ maxQueues })', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { maxQueues: '2' });
  });
  after(() => h.destroy());

  it('gives the engine its limit of queues, as `serve --max-queues` and JOBWORKER_MAX_QUEUES do', async () => {
    const first = await h.json('/v1/jobs', { body: { command: 'true', queue: 'one-more' } });
    assert.equal(first.status, 201);
    const refused = await h.json<ErrorJson>('/v1/jobs', { body: { command: 'true', queue: 'too-many' } });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.field, 'queue');
    assert.match(refused.body.error.message, /maximum of 2 queues/);
  });
});
