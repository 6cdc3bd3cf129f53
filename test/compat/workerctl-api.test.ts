import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

const UNKNOWN = '01900000-0000-7000-8000-000000000000';

describe("the workerctl design's action API", () => {
  let h: Harness;
  let a: AppHarness;
  let alice: string;
  let bob: string;
  const clock = new ManualClock();

  async function act(body: unknown, options: { url?: string; header?: string; from?: string } = {}) {
    const res = await a.app.inject({
      method: 'POST',
      url: options.url ?? '/api',
      remoteAddress: options.from ?? '127.0.0.1',
      headers: {
        'content-type': 'application/json',
        ...(options.header === undefined ? {} : { authorization: `Bearer ${options.header}` }),
      },
      payload: JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.json() as Record<string, unknown>, headers: res.headers };
  }

  before(async () => {
    h = await openHarness();
    a = await openApp(h, { clock, limits: { maxFailures: 3, windowMs: 60_000 } });
    alice = await a.issue('alice', 'user');
    bob = await a.issue('bob', 'user');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  it('start, status with the output, on /api and on /', async () => {
    for (const url of ['/api', '/']) {
      const started = await act(
        { action: 'start', token: alice, command: 'echo hello; echo oops >&2' },
        { url },
      );
      assert.equal(started.status, 200);
      assert.deepEqual(Object.keys(started.body).sort(), ['jobID', 'status']);
      assert.equal(started.body.status, 'created');
      const jobID = started.body.jobID as string;
      const job = await h.engine.waitFor(jobID);
      assert.equal(job.spec.shell, true, 'a command line, run by /bin/sh -c');
      assert.equal(job.spec.timeoutMs, 60_000, "the design's 60 s timeout");
      const status = await act({ action: 'status', token: alice, jobID }, { url });
      assert.deepEqual(status.body, { jobID, status: 'finished', output: 'hello\noops\n' });
    }
  });

  it('stop answers stopped; the job ends stopped; a second stop is an error', async () => {
    const { jobID } = (await act({ action: 'start', token: alice, command: 'sleep 30' })).body as {
      jobID: string;
    };
    const running = await act({ action: 'status', token: alice, jobID });
    assert.ok(['created', 'running'].includes(running.body.status as string));
    // Stopped once running (one stopped before its spawn is cancelled: it never ran).
    await h.engine.untilStarted(jobID);
    const stopped = await act({ action: 'stop', token: alice, jobID });
    assert.deepEqual(stopped.body, { jobID, status: 'stopped' });
    await h.engine.waitFor(jobID);
    assert.equal((await act({ action: 'status', token: alice, jobID })).body.status, 'stopped');
    const again = await act({ action: 'stop', token: alice, jobID });
    assert.equal(again.status, 409);
    assert.deepEqual(Object.keys(again.body), ['error']);
    assert.match(again.body.error as string, /had already finished \(stopped\); nothing changed/);
    assert.equal(again.headers['x-jobworker-error-code'], 'ALREADY_FINISHED');
  });

  it("a failed command is error; statuses map through the design's vocabulary", async () => {
    const { jobID } = (await act({ action: 'start', token: alice, command: 'exit 4' })).body as {
      jobID: string;
    };
    await h.engine.waitFor(jobID);
    assert.deepEqual((await act({ action: 'status', token: alice, jobID })).body, {
      jobID,
      status: 'error',
      output: '',
    });
  });

  it('takes the Authorization header too, when the body has no token', async () => {
    const started = await act({ action: 'start', command: 'true' }, { header: alice });
    assert.equal(started.body.status, 'created');
  });

  it("answers {error} for an unknown job, another user's job and bad input", async () => {
    const unknown = await act({ action: 'status', token: alice, jobID: UNKNOWN });
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.body, { error: `No job with id ${UNKNOWN}` });
    const { jobID } = (await act({ action: 'start', token: bob, command: 'true' })).body as { jobID: string };
    await h.engine.waitFor(jobID);
    assert.deepEqual((await act({ action: 'status', token: alice, jobID })).body, {
      error: `No job with id ${jobID}`,
    });
    assert.deepEqual((await act({ action: 'stop', token: alice, jobID })).body, {
      error: `No job with id ${jobID}`,
    });
    const noCommand = await act({ action: 'start', token: alice });
    assert.equal(noCommand.status, 400);
    assert.match(noCommand.body.error as string, /Expected `command` to be the command line to run/);
    const badId = await act({ action: 'stop', token: alice, jobID: 'abc' });
    assert.match(badId.body.error as string, /Expected `jobID` to be a job id .*, got `abc`/);
    const badAction = await act({ action: 'delete', token: alice, jobID });
    assert.equal(badAction.status, 400);
    assert.match(badAction.body.error as string, /action/);
  });

  it('refuses a bad body token through the Authenticator: audited, rate limited', async () => {
    const from = '10.1.1.1';
    for (let i = 0; i < 3; i++) {
      const res = await act({ action: 'start', token: 'jw_nope', command: 'true' }, { from });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, { error: 'Invalid token' });
    }
    const limited = await act({ action: 'start', token: 'jw_nope', command: 'true' }, { from });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['x-jobworker-error-code'], 'RATE_LIMITED');
    assert.ok(limited.headers['retry-after']);
    const page = await a.audit.list({ action: 'auth:fail', limit: 10 });
    assert.equal(page.entries.filter((e) => e.source === from).length, 3);
    const missing = await act({ action: 'start', command: 'true' }, { from: '10.1.1.2' });
    assert.equal(missing.status, 401);
    assert.match(missing.body.error as string, /Missing credentials/);
  });

  it('accepts a token in the body on this route alone', async () => {
    const res = await a.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ command: 'true', token: alice }),
    });
    assert.equal(res.statusCode, 401);
  });
});
