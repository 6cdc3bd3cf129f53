import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { pidAlive } from '../helpers/wait.ts';
import { type TestCluster, type TestNode, testCluster } from './cluster-harness.ts';

/** Job fields the test reads. */
interface JobJson {
  id: string;
  status: string;
  node: string;
  exitCode: number | null;
  reason?: string | null;
  exit?: { reason: string | null } | null;
}

// Short for a test, yet long enough that a node slowed by a loaded machine is not taken for lost.
const NODE_TIMEOUT_S = 6;
const FINAL = new Set(['succeeded', 'failed', 'stopped', 'timed_out', 'cancelled', 'lost']);

/** Polls `check` every 20 ms until it returns a value, for at most `ms` (a condition, not a sleep). */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function startJob(node: TestNode, spec: Record<string, unknown>): Promise<JobJson> {
  const { status, body } = await node.api<JobJson>('POST', '/v1/jobs', spec);
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

async function job(node: TestNode, id: string): Promise<JobJson> {
  const { status, body } = await node.api<JobJson>('GET', `/v1/jobs/${id}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

function untilStatus(
  node: TestNode,
  id: string,
  accept: (j: JobJson) => boolean,
  ms?: number,
): Promise<JobJson> {
  return until(
    `job ${id}`,
    async () => {
      const j = await job(node, id);
      return accept(j) ? j : undefined;
    },
    ms,
  );
}

/**
 * Runs `run` while `others` are drained, so that the one node left claims every job started in
 * it, whichever node takes the request.
 */
async function whileDrained(others: readonly TestNode[], run: () => Promise<void>): Promise<void> {
  for (const node of others) assert.equal((await node.api('POST', '/v1/drain', {})).status, 200);
  try {
    await run();
  } finally {
    for (const node of others) await node.api('POST', '/v1/undrain', {});
  }
}

describe('three nodes on one PostgreSQL database', () => {
  let database: TestDatabase;
  let cluster: TestCluster;
  let a: TestNode;
  let b: TestNode;
  let c: TestNode;
  let store: pg.Client;
  let work: string;

  before(async () => {
    database = await createTestDatabase('cluster');
    cluster = await testCluster(database.url, { nodeTimeout: `${NODE_TIMEOUT_S}s` });
    // Started together, as nodes of a cluster often are: they race to migrate, to make the user
    // `admin` and to issue their admin tokens, each of which must work on every node.
    [a, b, c] = await Promise.all([
      cluster.start('node-a'),
      cluster.start('node-b'),
      cluster.start('node-c'),
    ]);
    store = new pg.Client({ connectionString: database.url });
    await store.connect();
    work = await mkdtemp(join(tmpdir(), 'jw-cluster-work-'));
  });

  after(async () => {
    await store?.end();
    await cluster?.close();
    await database?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('lists the three nodes from any node, each active at the URL it listens at', async () => {
    const expected = [
      ['node-a', a.url, 'active', false],
      ['node-b', b.url, 'active', true],
      ['node-c', c.url, 'active', false],
    ];
    // Eventually: with a 3 s timeout on a loaded machine, a node slow to start may be declared lost
    // by a peer before it listens, and rejoins (with its URL) at its next beat.
    let seen: unknown;
    await until(
      'the three nodes to be listed active',
      async () => {
        const { status, body } = await b.api<{
          nodes: { id: string; url: string; state: string; self: boolean }[];
        }>('GET', '/v1/nodes');
        assert.equal(status, 200);
        seen = body.nodes.map((n) => [n.id, n.url, n.state, n.self]);
        return JSON.stringify(seen) === JSON.stringify(expected) ? true : undefined;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: last listing ${JSON.stringify(seen)}`);
    });
  });

  it('runs 300 jobs of a queue limited to 5 exactly once, never more than 5 at a time across nodes', async () => {
    assert.equal((await a.api('PUT', '/v1/queues/limited', { concurrency: 5 })).status, 200);
    const marks = join(work, 'marks');
    await rm(marks, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(marks, { mode: 0o777 }));
    let most = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await store.query<{ n: string }>(
          `select count(*) as n from jobs where queue = 'limited'
             and (status in ('running', 'paused') or hold = 'starting')`,
        );
        most = Math.max(most, Number(rows[0]!.n));
        samples++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const nodes = [a, b, c];
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const body = await startJob(nodes[i % 3]!, {
        command: 'sh',
        args: ['-c', `echo "$JOBWORKER_JOB_ID" >> "${marks}/$JOBWORKER_JOB_ID"; sleep 0.02`],
        queue: 'limited',
      });
      ids.push(body.id);
    }
    await until(
      '300 jobs to end',
      async () => {
        const { rows } = await store.query<{ n: string }>(
          `select count(*) as n from jobs where queue = 'limited' and status not in ('queued', 'running', 'paused')`,
        );
        return Number(rows[0]!.n) === 300 ? true : undefined;
      },
      240_000,
    );
    sampling = false;
    await sampler;
    assert.ok(samples > 10, `sampled ${samples} times`);
    assert.ok(most <= 5, `at most 5 jobs of the queue held a slot at once, saw ${most}`);
    assert.ok(most >= 2, `the queue ran jobs side by side (saw at most ${most})`);
    const { rows } = await store.query<{ status: string; node: string; n: string }>(
      `select status, node, count(*) as n from jobs where queue = 'limited' group by status, node`,
    );
    assert.deepEqual(new Set(rows.map((r) => r.status)), new Set(['succeeded']), JSON.stringify(rows));
    assert.ok(
      new Set(rows.map((r) => r.node)).size >= 2,
      `jobs ran on several nodes: ${JSON.stringify(rows)}`,
    );
    const files = await readdir(marks);
    assert.equal(files.length, 300);
    for (const id of ids)
      assert.equal(await readFile(join(marks, id), 'utf8'), `${id}\n`, `job ${id} ran once`);
  });

  it('follows through node A, byte for byte, a job running on node C, and reads it after its end', async () => {
    let id = '';
    await whileDrained([a, b], async () => {
      const started = await startJob(a, {
        command: 'sh',
        args: ['-c', 'seq 1 50000; echo to-stderr >&2; sleep 0.3; seq 50001 100000'],
      });
      id = started.id;
      await untilStatus(a, id, (j) => j.status !== 'queued');
    });
    assert.equal((await job(b, id)).node, 'node-c');
    const res = await fetch(new URL(`/v1/jobs/${id}/output?stream=stdout&follow=true`, a.url), {
      headers: { authorization: `Bearer ${a.token}` },
    });
    assert.equal(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    const expected = `${Array.from({ length: 100_000 }, (_, i) => i + 1).join('\n')}\n`;
    assert.equal(bytes.length, Buffer.byteLength(expected));
    assert.equal(
      createHash('sha256').update(bytes).digest('hex'),
      createHash('sha256').update(expected).digest('hex'),
    );
    const done = await untilStatus(b, id, (j) => FINAL.has(j.status));
    assert.equal(done.status, 'succeeded');
    // Finished output lives on node C: read through B, both streams.
    const stderr = await fetch(new URL(`/v1/jobs/${id}/output?stream=stderr`, b.url), {
      headers: { authorization: `Bearer ${b.token}` },
    });
    assert.equal(await stderr.text(), 'to-stderr\n');
  });

  it('follows through node A a job queued there that node C then starts: from its first byte to its end', async () => {
    for (const node of [a, b, c]) assert.equal((await node.api('POST', '/v1/drain', {})).status, 200);
    let undrained = false;
    try {
      const queued = await startJob(a, { command: 'sh', args: ['-c', 'seq 1 20000; echo to-stderr >&2'] });
      assert.equal(queued.status, 'queued');
      // Opened while the job waits: A's own engine will not start it, and would never hear of it.
      const following = fetch(new URL(`/v1/jobs/${queued.id}/output?follow=true`, a.url), {
        headers: { authorization: `Bearer ${a.token}` },
      });
      const res = await following;
      assert.equal(res.status, 200);
      assert.equal((await c.api('POST', '/v1/undrain', {})).status, 200);
      undrained = true;
      const text = await res.text();
      const expected = `${Array.from({ length: 20_000 }, (_, i) => i + 1).join('\n')}\nto-stderr\n`;
      assert.equal(text, expected);
      const done = await job(a, queued.id);
      assert.equal(done.node, 'node-c');
      assert.equal(done.status, 'succeeded');
    } finally {
      for (const node of undrained ? [a, b] : [a, b, c]) await node.api('POST', '/v1/undrain', {});
    }
  });

  it("runs a user's jobs as one pool uid on every node, and two users' as two, whichever nodes gave them", async () => {
    for (const name of ['pool-bob', 'pool-carol']) {
      assert.equal((await a.api('POST', '/v1/users', { name, role: 'user' })).status, 201);
    }
    const tokenOf = async (user: string) =>
      (await a.api<{ token: string }>('POST', '/v1/tokens', { user })).body.token;
    const as = async (node: TestNode, token: string, spec: Record<string, unknown>) => {
      const res = await fetch(new URL('/v1/jobs', `${node.url}/`), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(spec),
      });
      const body = (await res.json()) as JobJson & { account: { name: string; uid: number } };
      assert.equal(res.status, 201, JSON.stringify(body));
      return body;
    };
    const [bob, carol] = [await tokenOf('pool-bob'), await tokenOf('pool-carol')];
    // Issued through node A: the others know them once the store has told them (milliseconds).
    for (const node of [b, c]) {
      for (const token of [bob, carol]) {
        await until('the token known to every node', async () => {
          const res = await fetch(new URL('/v1/jobs?limit=1', `${node.url}/`), {
            headers: { authorization: `Bearer ${token}` },
          });
          await res.arrayBuffer();
          return res.status === 200 ? true : undefined;
        });
      }
    }
    // Each user's first job through another node: each of those nodes gives the uid.
    const carols = await as(b, carol, { command: 'id', args: ['-u'] });
    const bobs = await as(a, bob, { command: 'id', args: ['-u'] });
    assert.notEqual(bobs.account.uid, carols.account.uid, 'two users, two uids');
    // Bob's next job through node B, run by node C: the same uid, which the job runs as.
    let id = '';
    await whileDrained([a, b], async () => {
      const again = await as(b, bob, { command: 'id', args: ['-u'] });
      assert.equal(again.account.uid, bobs.account.uid, 'one user, one uid on every node');
      id = again.id;
      await untilStatus(a, id, (j) => FINAL.has(j.status));
    });
    assert.deepEqual([(await job(a, id)).status, (await job(a, id)).node], ['succeeded', 'node-c']);
    const out = await fetch(new URL(`/v1/jobs/${id}/output?stream=stdout`, a.url), {
      headers: { authorization: `Bearer ${a.token}` },
    });
    assert.equal((await out.text()).trim(), String(bobs.account.uid));
    for (const first of [carols, bobs]) await untilStatus(a, first.id, (j) => FINAL.has(j.status));
  });

  it('stops through node B a job on node C, with its whole tree', async () => {
    const pidFile = join(work, 'child.pid');
    let id = '';
    await whileDrained([a, b], async () => {
      const started = await startJob(b, {
        command: 'sh',
        args: ['-c', `sleep 1000 & echo $! > ${pidFile}; wait`],
      });
      id = started.id;
      await untilStatus(b, id, (j) => j.status === 'running');
    });
    const child = Number(
      await until('the child pid', async () => {
        const text = await readFile(pidFile, 'utf8').catch(() => '');
        return text.trim() === '' ? undefined : text.trim();
      }),
    );
    assert.equal(await pidAlive(child), true);
    const stop = await b.api<JobJson>('POST', `/v1/jobs/${id}/stop`, { graceMs: 1000 });
    // 202: the stop is on record and under way (the job ends once its processes are gone).
    assert.equal(stop.status, 202, JSON.stringify(stop.body));
    const stopped = await untilStatus(a, id, (j) => FINAL.has(j.status));
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.node, 'node-c');
    await until('the child to be gone', async () => ((await pidAlive(child)) ? undefined : true));
  });

  it('decides the jobs of node C when it is killed, while A and B go on; C ends their leftovers when it comes back', async () => {
    const pidFile = join(work, 'orphan.pid');
    let id = '';
    await whileDrained([a, b], async () => {
      const started = await startJob(a, {
        command: 'sh',
        args: ['-c', `echo $$ > ${pidFile}; exec sleep 1000`],
      });
      id = started.id;
      await untilStatus(a, id, (j) => j.status === 'running');
    });
    const pid = Number(
      await until('the job pid', async () => {
        const text = await readFile(pidFile, 'utf8').catch(() => '');
        return text.trim() === '' ? undefined : text.trim();
      }),
    );
    const killedAt = Date.now();
    c.process.child.kill('SIGKILL');
    await c.process.result();
    // The job's processes outlive their server, as on any restart; only the cluster knows C is gone.
    assert.equal(await pidAlive(pid), true);
    const lost = await untilStatus(a, id, (j) => FINAL.has(j.status), 60_000);
    const decidedAfterMs = Date.now() - killedAt;
    assert.equal(lost.status, 'lost');
    const { rows } = await store.query<{ exit_reason: string }>(
      `select exit_reason from jobs where id = $1`,
      [id],
    );
    assert.match(rows[0]!.exit_reason, /node node-c .*was lost: no heartbeat since/);
    await until('node-c to be recorded lost', async () => {
      const { rows: nodes } = await store.query<{ state: string }>(
        `select state from nodes where id = 'node-c'`,
      );
      return nodes[0]?.state === 'lost' ? true : undefined;
    });
    const listed = await a.api<{ nodes: { id: string; state: string; reason: string | null }[] }>(
      'GET',
      '/v1/nodes',
    );
    const nodeC = listed.body.nodes.find((n) => n.id === 'node-c');
    assert.equal(nodeC?.state, 'lost');
    assert.match(nodeC?.reason ?? '', /no heartbeat since .* declared by node-[ab]/);
    // Reported, not asserted: timing depends on the machine's load (the bench measures it).
    console.log(
      `# node-c's job decided ${decidedAfterMs} ms after the kill (node timeout ${NODE_TIMEOUT_S} s)`,
    );

    // The others keep going.
    const more = [];
    for (let i = 0; i < 6; i++) more.push(await startJob(i % 2 ? a : b, { command: 'true' }));
    for (const j of more)
      assert.equal((await untilStatus(b, j.id, (x) => FINAL.has(x.status))).status, 'succeeded');

    // C comes back on the same data directory: it finds its job decided and ends its leftover.
    c = await cluster.start('node-c');
    await until('the leftover to be ended', async () => ((await pidAlive(pid)) ? undefined : true));
    const { rows: nodes } = await store.query<{ state: string }>(
      `select state from nodes where id = 'node-c'`,
    );
    assert.equal(nodes[0]!.state, 'active');
    assert.equal((await job(c, id)).status, 'lost');
  });
});
