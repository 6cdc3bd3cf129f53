import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Principal } from '../../src/auth/principal.ts';
import { readBody, send } from '../../src/client/http.ts';
import { NodeCredentials } from '../../src/cluster/node-credentials.ts';
import { RemoteNode } from '../../src/cluster/remote-node.ts';
import type { Job } from '../../src/core/job.ts';
import { type Harness, openHarness, readAll } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
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
});
