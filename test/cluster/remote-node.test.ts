import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Principal, TOKENLESS_PRINCIPAL, TOKENLESS_USER } from '../../src/auth/principal.ts';
import { readBody, send } from '../../src/client/http.ts';
import { NodeCredentials } from '../../src/cluster/node-credentials.ts';
import { RemoteNode } from '../../src/cluster/remote-node.ts';
import type { Clock } from '../../src/core/clock.ts';
import type { JobworkerError } from '../../src/core/errors.ts';
import type { Job } from '../../src/core/job.ts';
import { OUTPUT_FRAMES_TYPE } from '../../src/core/output-frames.ts';
import type { FollowEvent } from '../../src/engine/job-engine.ts';
import { within } from '../api/api-harness.ts';
import { type Harness, openHarness, readAll } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';

const ALICE: Principal = Object.freeze({ user: 'alice', role: 'user' });
const PATTERN = 'jobworker-0123456789\n';
const MIB = 1024 * 1024;

/** `PATTERN` repeated to exactly `bytes` bytes: what `yes | head -c` prints. */
function patternOf(bytes: number): Buffer {
  return Buffer.from(PATTERN.repeat(Math.ceil(bytes / PATTERN.length)).slice(0, bytes));
}

/** The bytes of one stream in a list of follow events, and the last event. */
async function collect(
  events: AsyncIterator<FollowEvent>,
  until?: (bytes: number) => boolean,
): Promise<{ stdout: Buffer; stderr: Buffer; all: Buffer; end: Job | undefined }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const all: Buffer[] = [];
  let bytes = 0;
  // next() by hand: a `break` out of `for await` would close the stream, which `until` must not.
  for (let next = await events.next(); !next.done; next = await events.next()) {
    const event = next.value;
    if (event.type === 'end')
      return {
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err),
        all: Buffer.concat(all),
        end: event.job,
      };
    if (event.type !== 'output') continue;
    for (const e of event.events) {
      if (e.type !== 'data') continue;
      (e.stream === 'stdout' ? out : err).push(Buffer.from(e.data));
      all.push(Buffer.from(e.data));
      bytes += e.data.length;
    }
    if (until?.(bytes)) break;
  }
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), all: Buffer.concat(all), end: undefined };
}

/** A clock `offsetMs` away from the system's. */
function skewedClock(offsetMs: number): Clock {
  return {
    now: () => new Date(Date.now() + offsetMs),
    monotonicMs: () => performance.now(),
    setTimer: (fn, ms) => {
      const timer = setTimeout(fn, ms);
      timer.unref();
      return { clear: () => clearTimeout(timer) };
    },
  };
}

// Node C: a real server (engine, REST app on HTTPS loopback) that takes forwarded requests. The
// test plays node A through RemoteNode, signed with the same cluster secret.
describe('RemoteNode: a job on another node, through its REST API', () => {
  const secret = randomBytes(32);
  let hc: Harness;
  let c: AppHarness;
  let remote: RemoteNode;
  const nodeA = new NodeCredentials({ node: 'node-a', secret });

  const start = async (spec: Record<string, unknown>): Promise<Job> => {
    const job = await c.service.start(ALICE, spec);
    return hc.engine.untilStarted(job.id);
  };

  before(async () => {
    hc = await openHarness({ node: 'node-c' });
    c = await openApp(hc, { tls: true, nodes: new NodeCredentials({ node: 'node-c', secret }) });
    // The users of the cluster's shared store: C knows them as A does (it acts only for those).
    for (const user of ['alice', 'bob']) await c.issue(user, 'user');
    remote = new RemoteNode({
      node: 'node-c',
      url: c.url!,
      ca: [c.caPem],
      credentials: nodeA,
      // Stands in for the shared store: the record is C's own.
      records: (id) => hc.engine.get(id),
    });
  });
  after(async () => {
    await c.close();
    await hc.destroy();
  });

  it('reads and follows stdout, stderr and the combined view byte for byte, live, to the end event', async () => {
    const go = join(hc.dataDir, 'go');
    const job = await start({
      command: 'sh',
      args: [
        '-c',
        `yes '${PATTERN.trimEnd()}' | head -c ${3 * MIB}; echo first-err >&2; ` +
          `while [ ! -e ${go} ]; do sleep 0.02; done; yes '${PATTERN.trimEnd()}' | head -c ${MIB}; echo last-err >&2`,
      ],
    });
    // Live: the follow has the first 3 MiB before the job may go on.
    const follow = await remote.openOutput(ALICE, job.id, { selector: 'stdout', cursor: 0, follow: true });
    const first = await collect(follow, (bytes) => bytes >= 3 * MIB);
    assert.equal(first.stdout.length, 3 * MIB);
    await writeFile(go, '');
    const rest = await collect(follow);
    assert.equal(rest.end?.status, 'succeeded');
    assert.ok(
      Buffer.concat([first.stdout, rest.stdout]).equals(Buffer.concat([patternOf(3 * MIB), patternOf(MIB)])),
    );

    // Read (not followed) once it ended: each view equals what C reads locally.
    for (const selector of ['stdout', 'stderr', 'all'] as const) {
      const read = await collect(
        await remote.openOutput(ALICE, job.id, { selector, cursor: 0, follow: false }),
      );
      assert.equal(read.end?.status, 'succeeded', selector);
      assert.ok(read.all.equals(await readAll(hc.engine, job.id, selector)), `${selector} is byte-exact`);
    }
    const stderr = await collect(
      await remote.openOutput(ALICE, job.id, { selector: 'stderr', cursor: 10, follow: false }),
    );
    assert.equal(stderr.stderr.toString(), 'last-err\n');
    // Refusals come before the stream, with the peer's code.
    await assert.rejects(
      remote.openOutput(ALICE, job.id, { selector: 'stdout', cursor: 5 * MIB, follow: false }),
      (err: JobworkerError) => err.code === 'BAD_CURSOR',
    );
    await assert.rejects(
      remote.openOutput({ user: 'bob', role: 'user' }, job.id, { selector: 'all', cursor: 0, follow: false }),
      (err: JobworkerError) => err.code === 'NOT_FOUND',
    );
  });

  it('closes its request on node C when the follow is aborted or returned: C has no follower left', async () => {
    const job = await start({ command: 'sh', args: ['-c', 'while :; do echo tick; sleep 0.05; done'] });
    try {
      const controller = new AbortController();
      const follow = await remote.openOutput(ALICE, job.id, {
        selector: 'all',
        cursor: 0,
        follow: true,
        signal: controller.signal,
      });
      const first = await follow.next();
      assert.equal(first.value?.type, 'output');
      assert.equal(c.service.followers, 1);
      const closed = once(c.service, 'follower:close');
      controller.abort();
      await within(closed, 10_000, "C's follower to close after the abort");
      assert.equal(c.service.followers, 0);
      assert.equal((await follow.next()).done, true);

      // A consumer that stops reading (return) closes it too.
      const second = await remote.openOutput(ALICE, job.id, { selector: 'all', cursor: 0, follow: true });
      await second.next();
      const closedAgain = once(c.service, 'follower:close');
      await second.return(undefined);
      await within(closedAgain, 10_000, "C's follower to close after return()");
      assert.equal(c.service.followers, 0);
    } finally {
      await hc.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
      await hc.engine.waitFor(job.id);
    }
  });

  it('pulls: a consumer that stops reading holds node C back, and reads the rest byte for byte later', async () => {
    // More than the kernel may queue on both ends of a loopback connection (tcp_rmem max 32 MiB here).
    const total = 96 * MIB;
    const job = await start({ command: 'sh', args: ['-c', `yes '${PATTERN.trimEnd()}' | head -c ${total}`] });
    const follow = await remote.openOutput(ALICE, job.id, { selector: 'stdout', cursor: 0, follow: true });
    const first = await collect(follow, (bytes) => bytes > 0);
    await hc.engine.waitFor(job.id);
    // Wait until both kernel queues of the connection hold bytes nobody has read: C's writer is
    // then blocked by the window, not by the disk or by the job.
    const port = Number(new URL(c.url!).port).toString(16).toUpperCase().padStart(4, '0');
    const queued = async (): Promise<{ tx: number; rx: number }> => {
      const lines = (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1);
      let tx = 0;
      let rx = 0;
      for (const line of lines) {
        const f = line.trim().split(/\s+/);
        if (f.length < 5 || f[3] !== '01') continue;
        const [txq, rxq] = f[4]!.split(':').map((h) => Number.parseInt(h, 16)) as [number, number];
        if (f[1]!.endsWith(`:${port}`)) tx += txq; // C's side of the connection
        if (f[2]!.endsWith(`:${port}`)) rx += rxq; // A's side
      }
      return { tx, rx };
    };
    await within(
      (async () => {
        for (let q = await queued(); q.tx === 0 || q.rx === 0; q = await queued()) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      20_000,
      'both ends of the connection to hold unread bytes',
    );
    const { tx, rx } = await queued();
    assert.ok(first.stdout.length + tx + rx < total, `${first.stdout.length} + ${tx} + ${rx} < ${total}`);
    assert.equal(c.service.followers, 1, 'C still has bytes to send: it waits for the window');
    const rest = await collect(follow);
    assert.equal(rest.end?.status, 'succeeded');
    assert.ok(Buffer.concat([first.stdout, rest.stdout]).equals(patternOf(total)));
  });

  it("follows a tokenless /run's job for the tokenless principal, which no directory knows, and nobody else's", async () => {
    // A tokenless `/run` answered by node A whose job node C runs: A forwards its output as the
    // tokenless principal, which is no user of C's directory either.
    const job = await c.service.start(TOKENLESS_PRINCIPAL, { command: 'echo', args: ['tokenless'] });
    await hc.engine.waitFor(job.id);
    const own = await collect(
      await remote.openOutput(TOKENLESS_PRINCIPAL, job.id, { selector: 'all', cursor: 0, follow: true }),
    );
    assert.equal(own.all.toString(), 'tokenless\n');
    assert.equal(own.end?.owner, TOKENLESS_USER);
    const alices = await start({ command: 'echo', args: ['alice'] });
    await assert.rejects(
      remote.openOutput(TOKENLESS_PRINCIPAL, alices.id, { selector: 'all', cursor: 0, follow: false }),
      (err: JobworkerError) => err.code === 'NOT_FOUND',
    );
  });

  it('stops a job with its whole tree, pauses and resumes it', async () => {
    const pids = join(hc.dataDir, 'tree-pids');
    const job = await start({
      command: 'sh',
      args: ['-c', `sleep 1000 & echo $! > ${pids}; echo ready; wait`],
    });
    await waitForFileText(pids, '\n');
    const child = Number((await readFile(pids, 'utf8')).trim());
    assert.ok(await pidAlive(child));

    const paused = await remote.pause(ALICE, job.id);
    assert.equal(paused.status, 'paused');
    const resumed = await remote.resume(ALICE, job.id);
    assert.equal(resumed.status, 'running');
    await assert.rejects(
      remote.resume(ALICE, job.id),
      (err: JobworkerError) => err.code === 'ILLEGAL_TRANSITION',
    );

    const stopping = await remote.stop(ALICE, job.id, 200);
    assert.notEqual(stopping.stop, null);
    const ended = await within(hc.engine.waitFor(job.id), 20_000, 'the job to end after the stop');
    assert.equal(ended.status, 'stopped');
    assert.equal(await pidAlive(child), false, 'the sleep the job spawned is gone too');
    await assert.rejects(
      remote.stop(ALICE, job.id),
      (err: JobworkerError) => err.code === 'ALREADY_FINISHED',
    );
    // C records what was forwarded to it as the user's, with transport `node`.
    const stops = (await c.audit.list({ action: 'job:stop', limit: 10 })).entries.filter(
      (e) => e.target === job.id,
    );
    assert.deepEqual(
      stops.map((e) => [e.user, e.transport, e.result]),
      [
        ['alice', 'node', 'ALREADY_FINISHED'],
        ['alice', 'node', 'ok'],
      ],
    );
  });

  it('refuses a wrong secret, a stale signature, a tampered path and unsigned routes with a clear answer', async () => {
    const job = await start({ command: 'echo', args: ['hi'] });
    await hc.engine.waitFor(job.id);
    const path = `/v1/jobs/${job.id}/output?stream=all&cursor=0&follow=false`;
    const get = async (target: string, headers: Record<string, string>, method: 'GET' | 'POST' = 'GET') => {
      const response = await send({
        method,
        url: new URL(target, c.url),
        headers: { ...headers, accept: OUTPUT_FRAMES_TYPE },
        tls: {
          ca: [c.caPem],
          caFiles: ['test CA'],
          caExplicit: true,
          cert: undefined,
          key: undefined,
          certFile: undefined,
        },
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      const body = (await readBody(response)).toString('utf8');
      return { status: response.statusCode, body };
    };

    const good = await get(path, nodeA.sign('GET', path, ALICE));
    assert.equal(good.status, 200);

    const wrong = new NodeCredentials({ node: 'node-a', secret: randomBytes(32) });
    const refused = await get(path, wrong.sign('GET', path, ALICE));
    assert.equal(refused.status, 401);
    assert.match(refused.body, /invalid signature.*cluster secret differs/);

    const stale = new NodeCredentials({ node: 'node-a', secret, clock: skewedClock(-61_000) });
    const late = await get(path, stale.sign('GET', path, ALICE));
    assert.equal(late.status, 401);
    assert.match(late.body, /signed -?6\d s from this node's time, more than the 60 s allowed/);

    const other = `/v1/jobs/${job.id}/output?stream=stderr&cursor=0&follow=false`;
    const tampered = await get(other, nodeA.sign('GET', path, ALICE));
    assert.equal(tampered.status, 401);

    const asAdmin = await get(path, {
      ...nodeA.sign('GET', path, ALICE),
      'x-jobworker-act-as-role': 'admin',
    });
    assert.equal(asAdmin.status, 401);

    const stopPath = `/v1/jobs/${job.id}/stop`;
    const changedBody = await get(stopPath, nodeA.sign('POST', stopPath, ALICE, '{"graceMs":5}'), 'POST');
    assert.equal(changedBody.status, 401);
    assert.match(changedBody.body, /not the one it signed/);

    const notForwardable = await get('/v1/users', nodeA.sign('GET', '/v1/users', ALICE));
    assert.equal(notForwardable.status, 403);

    // A node whose directory is behind C's (a disable or a new role it has not heard of yet) does
    // not make C act for more than C grants: the user and role must be the same on C.
    const asStaleAdmin = await get(path, nodeA.sign('GET', path, { user: 'alice', role: 'admin' }));
    assert.equal(asStaleAdmin.status, 401);
    assert.match(asStaleAdmin.body, /forwarded this call as admin \\"alice\\", who is a user on this node/);
    // Less than C grants is taken as signed: an admin's call lowered to `user` acts as a user
    // here, and alice's job is none of its business (404, as to any user).
    await c.issue('boss', 'admin');
    const lowered = await get(path, nodeA.sign('GET', path, { user: 'boss', role: 'user' }));
    assert.equal(lowered.status, 404, lowered.body);
    // The tokenless principal (no user of any directory) is taken as a `user` only.
    const asTokenlessAdmin = await get(
      path,
      nodeA.sign('GET', path, { user: TOKENLESS_USER, role: 'admin' }),
    );
    assert.equal(asTokenlessAdmin.status, 401, asTokenlessAdmin.body);
    const asUnknown = await get(path, nodeA.sign('GET', path, { user: 'mallory', role: 'admin' }));
    assert.equal(asUnknown.status, 401);
    assert.match(asUnknown.body, /who is unknown or disabled on this node/);
    // Not counted as failed authentications: the forwarding node is late, not guessing.
    for (let i = 0; i < 12; i++) {
      assert.equal((await get(path, nodeA.sign('GET', path, { user: 'mallory', role: 'user' }))).status, 401);
    }
    assert.equal((await get(path, nodeA.sign('GET', path, ALICE))).status, 200);

    // Through RemoteNode, a peer that refuses this node's credentials is unavailable, not 401.
    const misconfigured = new RemoteNode({
      node: 'node-c',
      url: c.url!,
      ca: [c.caPem],
      credentials: wrong,
      records: (id) => hc.engine.get(id),
    });
    await assert.rejects(
      misconfigured.openOutput(ALICE, job.id, { selector: 'all', cursor: 0, follow: false }),
      (err: JobworkerError) =>
        err.code === 'NODE_UNAVAILABLE' && err.message.includes('node "node-c" at https://127.0.0.1:'),
    );
    // Failed node authentications are recorded like other failed authentications.
    await c.audit.flush();
    const failures = (await c.audit.list({ action: 'auth:fail', limit: 100 })).entries;
    assert.ok(failures.length >= 4);
  });
});

describe('RemoteNode: a peer that takes the connection and never answers', () => {
  it('gives up once its answer timeout has passed on its clock: NODE_UNAVAILABLE naming the wait', async () => {
    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => sockets.push(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const clock = new ManualClock();
    const remote = new RemoteNode({
      node: 'node-c',
      url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      credentials: new NodeCredentials({ node: 'node-a', secret: randomBytes(32) }),
      records: () => Promise.reject(new Error('no job is recorded here')),
      answerTimeoutMs: 60_000,
      clock,
    });
    try {
      let settled = false;
      const stopping = remote.stop(ALICE, 'job-1').finally(() => {
        settled = true;
      });
      const [peerSide] = await once(silent, 'connection');
      await new Promise((resolve) => (peerSide as Socket).once('data', resolve));
      assert.equal(settled, false, 'the request is out and waits for its answer');
      clock.advance(60_000);
      await assert.rejects(within(stopping, 10_000, 'the give-up'), (err: JobworkerError) => {
        assert.equal(err.code, 'NODE_UNAVAILABLE');
        assert.match(err.message, /did not answer within 60000 ms/);
        return true;
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
