import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Principal } from '../../src/auth/principal.ts';
import type { ClusterRouting, NodePeer } from '../../src/cluster/cluster-routing.ts';
import { NodeCredentials } from '../../src/cluster/node-credentials.ts';
import { RemoteNode } from '../../src/cluster/remote-node.ts';
import type { JobworkerError } from '../../src/core/errors.ts';
import type { Job } from '../../src/core/job.ts';
import { AuditLog } from '../../src/service/audit-log.ts';
import { JobService } from '../../src/service/job-service.ts';
import { within } from '../api/api-harness.ts';
import { type Harness, openHarness, readAll } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';
import { sharedRecords } from './shared-records.ts';

const ALICE: Principal = Object.freeze({ user: 'alice', role: 'user' });

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function drain(stream: AsyncIterable<import('../../src/engine/job-engine.ts').FollowEvent>) {
  const bytes: Buffer[] = [];
  let end: Job | undefined;
  for await (const event of stream) {
    if (event.type === 'end') end = event.job;
    else if (event.type === 'output') {
      for (const e of event.events) if (e.type === 'data') bytes.push(Buffer.from(e.data));
    }
  }
  return { data: Buffer.concat(bytes), end };
}

describe('JobService in a cluster: calls about a job on another node are forwarded to it', () => {
  const secret = randomBytes(32);
  let ha: Harness;
  let hc: Harness;
  let c: AppHarness;
  let audit: AuditLog;
  let service: JobService;
  let routing: ClusterRouting;
  const peers = new Map<string, NodePeer>();

  before(async () => {
    hc = await openHarness({ node: 'node-c' });
    c = await openApp(hc, { tls: true, nodes: new NodeCredentials({ node: 'node-c', secret }) });
    // The users of the cluster's shared store: C knows them as A does (it acts only for those).
    for (const user of ['alice', 'bob']) await c.issue(user, 'user');
    ha = await openHarness({ node: 'node-a' });
    const credentials = new NodeCredentials({ node: 'node-a', secret });
    const records = (id: string) => hc.engine.get(id);
    peers.set('node-c', new RemoteNode({ node: 'node-c', url: c.url!, ca: [c.caPem], credentials, records }));
    peers.set(
      'node-gone',
      new RemoteNode({
        node: 'node-gone',
        url: `https://127.0.0.1:${await closedPort()}`,
        credentials,
        records,
      }),
    );
    routing = { node: 'node-a', peer: async (id) => peers.get(id), pollMs: 50 };
    audit = new AuditLog(ha.store.users);
    service = new JobService(sharedRecords(ha, hc), { cluster: routing, audit });
  });
  after(async () => {
    await service.shutdown();
    await audit.flush();
    await c.close();
    await hc.destroy();
    await ha.destroy();
  });

  const startOnC = async (spec: Record<string, unknown>): Promise<Job> =>
    hc.engine.untilStarted((await c.service.start(ALICE, spec)).id);

  it("follows and reads a job on C through A's service, byte for byte, counted as A's follower", async () => {
    const job = await startOnC({
      command: 'sh',
      args: ['-c', 'yes jobworker | head -c 2097152; echo oops >&2; yes more | head -c 100000'],
    });
    assert.equal((await service.get(ALICE, job.id)).node, 'node-c');
    const follow = await service.openOutput(ALICE, job.id, { selector: 'all', cursor: 0, follow: true });
    assert.equal(service.followers, 1);
    const followed = await drain(follow);
    assert.equal(service.followers, 0);
    assert.equal(followed.end?.status, 'succeeded');
    assert.equal(followed.end?.node, 'node-c');
    assert.ok(followed.data.equals(await readAll(hc.engine, job.id, 'all')));
    const stderr = await drain(
      await service.openOutput(ALICE, job.id, { selector: 'stderr', cursor: 0, follow: false }),
    );
    assert.equal(stderr.data.toString(), 'oops\n');
    // Another user's job answers as an unknown one, before any forwarding.
    await assert.rejects(
      service.openOutput({ user: 'bob', role: 'user' }, job.id, {
        selector: 'all',
        cursor: 0,
        follow: false,
      }),
      (err: JobworkerError) => err.code === 'NOT_FOUND',
    );
  });

  it("stops a job on C through A with its tree; A's wait sees it end; A's audit records the stop", async () => {
    const pids = join(hc.dataDir, 'a-tree-pids');
    const job = await startOnC({ command: 'sh', args: ['-c', `sleep 1000 & echo $! > ${pids}; wait`] });
    await waitForFileText(pids, '\n');
    const child = Number((await readFile(pids, 'utf8')).trim());

    assert.equal((await service.pause(ALICE, job.id)).status, 'paused');
    assert.equal((await service.resume(ALICE, job.id)).status, 'running');

    const waiting = service.waitFor(ALICE, job.id);
    const stopping = await service.stop(ALICE, job.id, { graceMs: 100 });
    assert.notEqual(stopping.stop, null);
    const ended = await within(waiting, 20_000, "A's wait for the job on C");
    assert.equal(ended.status, 'stopped');
    assert.equal(await pidAlive(child), false);
    await assert.rejects(
      service.stop(ALICE, job.id),
      (err: JobworkerError) => err.code === 'ALREADY_FINISHED',
    );

    const entries = (await audit.list({ action: 'job:stop', limit: 10 })).entries;
    assert.ok(entries.some((e) => e.target === job.id && e.result === 'ok'));
    assert.deepEqual(
      (await audit.list({ action: 'job:pause', limit: 10 })).entries.map((e) => e.target),
      [job.id],
    );
  });

  it("shows the stderr tail of a failed job on C in A's result error", async () => {
    const job = await startOnC({ command: 'sh', args: ['-c', 'echo the-reason >&2; exit 3'] });
    await hc.engine.waitFor(job.id);
    await assert.rejects(
      service.result(ALICE, job.id),
      (err: JobworkerError) => err.code === 'JOB_FAILED' && err.message.includes('the-reason'),
    );
  });

  it('answers NODE_UNAVAILABLE for a job on an unknown or unreachable node, and never forwards twice', async () => {
    const job = await startOnC({ command: 'sleep', args: ['1000'] });
    try {
      peers.delete('node-c');
      await assert.rejects(
        service.stop(ALICE, job.id),
        (err: JobworkerError) =>
          err.code === 'NODE_UNAVAILABLE' && err.message.includes('"node-c", which is not a known node'),
      );
      peers.set('node-c', peers.get('node-gone')!);
      await assert.rejects(
        service.openOutput(ALICE, job.id, { selector: 'all', cursor: 0, follow: true }),
        (err: JobworkerError) =>
          err.code === 'NODE_UNAVAILABLE' &&
          /node "node-gone" at https:\/\/127\.0\.0\.1:\d+.*refused/.test(err.message),
      );
      assert.equal(service.followers, 0, 'a refused open gives its slot back');
      // A peer that answers with a refusal (here: of this node's credentials) refused the stop:
      // it is not recorded, whatever the refusal is passed on as.
      peers.set(
        'node-c',
        new RemoteNode({
          node: 'node-c',
          url: c.url!,
          ca: [c.caPem],
          credentials: new NodeCredentials({ node: 'node-a', secret: randomBytes(32) }),
          records: (id) => hc.engine.get(id),
        }),
      );
      await assert.rejects(
        service.stop(ALICE, job.id, { graceMs: 0 }),
        (err: JobworkerError) => err.code === 'NODE_UNAVAILABLE' && !err.message.includes('recorded'),
      );
      assert.equal((await hc.engine.get(job.id)).stop, null, 'a refused stop is not recorded');
      peers.set('node-c', peers.get('node-gone')!);
      // A stop that cannot reach the job's node at all is recorded all the same: should that node
      // be declared lost, the job is not retried.
      await assert.rejects(
        service.stop(ALICE, job.id, { graceMs: 0 }),
        (err: JobworkerError) =>
          err.code === 'NODE_UNAVAILABLE' && err.message.includes('The stop is recorded'),
      );
      const recorded = await hc.engine.get(job.id);
      assert.equal(recorded.stop?.by, 'alice');
      assert.equal(recorded.status, 'running', 'its processes are reached only through its node');
      await assert.rejects(
        service.stop({ ...ALICE, via: 'node-b' }, job.id),
        (err: JobworkerError) =>
          err.code === 'NODE_UNAVAILABLE' && err.message.includes('not forwarded again'),
      );
    } finally {
      await hc.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
      await hc.engine.waitFor(job.id);
    }
  });

  it("counts forwarded follows toward A's maxFollowers", async () => {
    const peer = peers.get('node-gone');
    const real = new RemoteNode({
      node: 'node-c',
      url: c.url!,
      ca: [c.caPem],
      credentials: new NodeCredentials({ node: 'node-a', secret }),
      records: (id) => hc.engine.get(id),
    });
    peers.set('node-c', real);
    const limited = new JobService(sharedRecords(ha, hc), { cluster: routing, maxFollowers: 1 });
    const job = await startOnC({ command: 'sleep', args: ['1000'] });
    try {
      const first = await limited.openOutput(ALICE, job.id, { selector: 'all', cursor: 0, follow: true });
      await assert.rejects(
        limited.openOutput(ALICE, job.id, { selector: 'all', cursor: 0, follow: true }),
        (err: JobworkerError) => err.code === 'CAPACITY_EXHAUSTED',
      );
      await first.return(undefined);
      assert.equal(limited.followers, 0);
      await within(
        (async () => {
          while (c.service.followers > 0) await new Promise((r) => c.service.once('follower:close', r));
        })(),
        10_000,
        "C's follower to close",
      );
    } finally {
      await limited.shutdown();
      await hc.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
      await hc.engine.waitFor(job.id);
      assert.ok(peer);
    }
  });

  it("still serves A's own jobs locally", async () => {
    const job = await service.start(ALICE, { command: 'echo', args: ['local'] });
    const ended = await service.waitFor(ALICE, job.id);
    assert.equal(ended.node, 'node-a');
    const read = await drain(
      await service.openOutput(ALICE, job.id, { selector: 'stdout', cursor: 0, follow: false }),
    );
    assert.equal(read.data.toString(), 'local\n');
  });
});
