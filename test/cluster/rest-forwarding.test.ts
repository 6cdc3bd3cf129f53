import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Code, type ConnectError } from '@connectrpc/connect';
import { JobStatus } from '../../src/api/rpc/gen/jobworker/v1/job_pb.ts';
import type { Principal } from '../../src/auth/principal.ts';
import { readBody, send } from '../../src/client/http.ts';
import { NodeCredentials } from '../../src/cluster/node-credentials.ts';
import { RemoteNode } from '../../src/cluster/remote-node.ts';
import type { Job } from '../../src/core/job.ts';
import { type Harness, openHarness, readAll } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp, rpcJobs } from '../helpers/rest-app-harness.ts';
import { sharedRecords } from './shared-records.ts';

const ALICE: Principal = Object.freeze({ user: 'alice', role: 'user' });

// Node A and node C are both real REST servers on HTTPS loopback; the client talks to A only, with
// its own token, about a job that C runs. What differs from a call to C is the latency alone.
describe('REST through node A for a job on node C', () => {
  const secret = randomBytes(32);
  let ha: Harness;
  let hc: Harness;
  let a: AppHarness;
  let c: AppHarness;
  let token: string;

  before(async () => {
    hc = await openHarness({ node: 'node-c' });
    c = await openApp(hc, { tls: true, nodes: new NodeCredentials({ node: 'node-c', secret }) });
    // The users of the cluster's shared store: C knows them as A does (it acts only for those).
    for (const user of ['alice', 'bob']) await c.issue(user, 'user');
    ha = await openHarness({ node: 'node-a' });
    const credentials = new NodeCredentials({ node: 'node-a', secret });
    const peer = new RemoteNode({
      node: 'node-c',
      url: c.url!,
      ca: [c.caPem],
      credentials,
      records: (id) => hc.engine.get(id),
    });
    a = await openApp(ha, {
      tls: true,
      nodes: credentials,
      engine: sharedRecords(ha, hc),
      cluster: { node: 'node-a', peer: async (id) => (id === 'node-c' ? peer : undefined), pollMs: 50 },
    });
    token = await a.issue('alice', 'user');
  });
  after(async () => {
    await a.close();
    await c.close();
    await ha.destroy();
    await hc.destroy();
  });

  const call = async (method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}) => {
    const response = await send({
      method,
      url: new URL(path, a.url),
      headers: { authorization: `Bearer ${token}`, ...headers },
      tls: {
        ca: [a.caPem],
        caFiles: ['test CA'],
        caExplicit: true,
        cert: undefined,
        key: undefined,
        certFile: undefined,
      },
      ...(method === 'POST' ? { body: '{}' } : {}),
    });
    return { status: response.statusCode, headers: response.headers, body: await readBody(response) };
  };
  const startOnC = async (spec: Record<string, unknown>): Promise<Job> =>
    hc.engine.untilStarted((await c.service.start(ALICE, spec)).id);

  it('follows the output byte for byte, raw and as server-sent events, with the end of the job', async () => {
    const job = await startOnC({
      command: 'sh',
      args: ['-c', 'yes forwarded | head -c 1500000; echo to-stderr >&2; yes again | head -c 300000'],
    });
    const raw = await call('GET', `/v1/jobs/${job.id}/output?stream=all&follow=true`);
    assert.equal(raw.status, 200);
    assert.ok(raw.body.equals(await readAll(hc.engine, job.id, 'all')));
    const stderr = await call('GET', `/v1/jobs/${job.id}/output?stream=stderr`);
    assert.equal(stderr.body.toString(), 'to-stderr\n');
    assert.equal(stderr.headers['x-jobworker-end'], '10');

    const sse = await call('GET', `/v1/jobs/${job.id}/output?stream=stderr&follow=true`, {
      accept: 'text/event-stream',
    });
    const text = sse.body.toString();
    assert.match(text, /event: end/);
    assert.match(text, /"status":"succeeded"/);
    assert.equal(a.service.followers, 0);
  });

  it('stops a job on C; a second stop says it had finished; another user’s job is unknown', async () => {
    const job = await startOnC({ command: 'sleep', args: ['1000'] });
    const stopped = await call('POST', `/v1/jobs/${job.id}/stop`);
    assert.equal(stopped.status, 202);
    assert.notEqual(JSON.parse(stopped.body.toString()).stopRequestedAt, null);
    assert.equal((await hc.engine.waitFor(job.id)).status, 'stopped');
    const again = await call('POST', `/v1/jobs/${job.id}/stop`);
    assert.equal(again.status, 409);
    assert.equal(JSON.parse(again.body.toString()).error.code, 'ALREADY_FINISHED');
    // Another user's job on C is unknown through A, exactly as on C.
    const bobs = await c.service.start({ user: 'bob', role: 'user' }, { command: 'echo', args: ['x'] });
    const hidden = await call('GET', `/v1/jobs/${bobs.id}/output`);
    assert.equal(hidden.status, 404);
  });

  it('answers RPC (Connect) the same way: output, pause, resume and stop of a job on C', async () => {
    const jobs = rpcJobs(a, token);
    const done = await startOnC({ command: 'sh', args: ['-c', 'echo over-rpc; echo rpc-err >&2'] });
    await hc.engine.waitFor(done.id);
    const text: string[] = [];
    let end: JobStatus | undefined;
    for await (const message of jobs.streamOutput({ id: done.id, follow: true })) {
      if (message.event.case === 'data') text.push(Buffer.from(message.event.value.data).toString());
      if (message.event.case === 'end') end = message.event.value.status;
    }
    assert.equal(text.join(''), (await readAll(hc.engine, done.id, 'all')).toString());
    assert.equal(end, JobStatus.SUCCEEDED);

    const job = await startOnC({ command: 'sleep', args: ['1000'] });
    assert.equal((await jobs.pause({ id: job.id })).job?.status, JobStatus.PAUSED);
    assert.equal((await jobs.resume({ id: job.id })).job?.status, JobStatus.RUNNING);
    await jobs.stop({ id: job.id });
    assert.equal((await jobs.waitFor({ id: job.id })).job?.status, JobStatus.STOPPED);
    await assert.rejects(
      jobs.pause({ id: job.id }),
      (err: ConnectError) => err.code === Code.FailedPrecondition,
    );
  });
});
