import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

const UNKNOWN = '01900000-0000-7000-8000-000000000000';

describe("the Job Worker design's REST paths", () => {
  let h: Harness;
  let a: AppHarness;
  let alice: string;
  let bob: string;
  let vera: string;

  async function call(method: 'GET' | 'POST', url: string, token?: string, body?: unknown) {
    const res = await a.app.inject({
      method,
      url,
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: res.json() as Record<string, unknown>, headers: res.headers };
  }

  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    alice = await a.issue('alice', 'user');
    bob = await a.issue('bob', 'user');
    vera = await a.issue('vera', 'viewer');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  it('GET /health/ and /health answer without credentials', async () => {
    for (const url of ['/health/', '/health']) {
      assert.deepEqual((await call('GET', url)).body, { status: 'success', error: null });
    }
  });

  it('start, status and stop, with and without the trailing slash', async () => {
    for (const slash of ['/', '']) {
      const started = await call('POST', `/start${slash}`, alice, { command: 'sleep', args: ['30'] });
      assert.equal(started.status, 200);
      assert.equal(started.body.status, 'running');
      assert.equal(started.body.error, null);
      const jobId = started.body.jobId as string;
      assert.match(jobId, /^[0-9a-f-]{36}$/);
      const status = await call('GET', `/status/${jobId}${slash}`, alice);
      assert.deepEqual(Object.keys(status.body).sort(), ['error', 'jobStatus', 'status']);
      assert.equal(status.body.status, 'success');
      assert.ok(['queued', 'running'].includes(status.body.jobStatus as string));
      // Stopped once running (one stopped before its spawn is cancelled: it never ran).
      await h.engine.untilStarted(jobId);
      const stopped = await call('POST', `/stop${slash}`, alice, { jobId });
      assert.deepEqual(stopped.body, { status: 'success', error: null });
      await h.engine.waitFor(jobId);
      const after = await call('GET', `/status/${jobId}`, alice);
      assert.deepEqual(after.body, { status: 'success', error: null, jobStatus: 'stopped' });
      // Stopping it again: the design's error, "already stopped".
      const again = await call('POST', `/stop${slash}`, alice, { jobId });
      assert.equal(again.status, 409);
      assert.equal(again.headers['x-jobworker-error-code'], 'ALREADY_FINISHED');
      assert.equal(again.body.status, 'error');
      assert.match(again.body.error as string, /already finished \(stopped\)/);
    }
  });

  it('runs the command with its args, no shell, and reports its exit', async () => {
    const started = await call('POST', '/start/', alice, { command: 'sh', args: ['-c', 'exit 3'] });
    await h.engine.waitFor(started.body.jobId as string);
    const status = await call('GET', `/status/${started.body.jobId}`, alice);
    assert.equal(status.body.jobStatus, 'failed');
    const job = await h.engine.get(started.body.jobId as string);
    assert.equal(job.exit?.exitCode, 3);
    assert.equal(job.spec.shell, false);
  });

  it("answers errors in the design's shape: no credentials, unknown job, another user's job, bad input", async () => {
    const none = await call('POST', '/start/', undefined, { command: 'true' });
    assert.equal(none.status, 401);
    assert.equal(none.headers['x-jobworker-error-code'], 'UNAUTHENTICATED');
    assert.deepEqual(Object.keys(none.body).sort(), ['error', 'jobId', 'status']);
    assert.equal(none.body.status, 'error');
    assert.equal(none.body.jobId, null);
    assert.match(none.body.error as string, /Missing credentials/);

    const noneStatus = await call('GET', `/status/${UNKNOWN}`);
    assert.equal(noneStatus.status, 401);
    assert.deepEqual(Object.keys(noneStatus.body).sort(), ['error', 'jobStatus', 'status']);

    const unknown = await call('GET', `/status/${UNKNOWN}/`, alice);
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.body, { status: 'error', error: `No job with id ${UNKNOWN}`, jobStatus: null });

    const bobs = (await call('POST', '/start/', bob, { command: 'true' })).body.jobId as string;
    await h.engine.waitFor(bobs);
    const hidden = await call('GET', `/status/${bobs}`, alice);
    assert.deepEqual(hidden.body, { status: 'error', error: `No job with id ${bobs}`, jobStatus: null });
    const stopHidden = await call('POST', '/stop/', alice, { jobId: bobs });
    assert.deepEqual(stopHidden.body, { status: 'error', error: `No job with id ${bobs}` });
    assert.equal(stopHidden.status, 404);

    const viewer = await call('POST', '/start/', vera, { command: 'true' });
    assert.equal(viewer.status, 403);
    assert.equal(viewer.body.status, 'error');

    const badId = await call('GET', '/status/nope', alice);
    assert.equal(badId.status, 400);
    assert.match(badId.body.error as string, /Expected `jobId` to be a job id/);
    const noCommand = await call('POST', '/start', alice, { args: [] });
    assert.equal(noCommand.status, 400);
    assert.match(noCommand.body.error as string, /command/);
    const extra = await call('POST', '/start', alice, { command: 'true', shell: true });
    assert.equal(extra.status, 400);
    assert.match(extra.body.error as string, /shell/);
    const missing = await call('POST', '/start/', alice, { command: 'no-such-command-here' });
    assert.equal(missing.status, 400);
    assert.equal(missing.headers['x-jobworker-error-code'], 'COMMAND_NOT_FOUND');
    assert.equal(missing.body.jobId, null);
  });
});
