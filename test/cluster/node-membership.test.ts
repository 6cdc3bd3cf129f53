import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UserDirectory } from '../../src/auth/user-directory.ts';
import { decideLostNodeJobs } from '../../src/cluster/lost-node-jobs.ts';
import { NodeMembership } from '../../src/cluster/node-membership.ts';
import { newJobId } from '../../src/core/ids.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { pidAlive } from '../helpers/wait.ts';
import { makeJob } from '../store/make-job.ts';

const T0 = new Date(Date.UTC(2026, 11, 2, 12, 0, 0));
const TIMEOUT_MS = 30_000;
const NOT_DRAINING = { relinquishDecided: async () => [], drainState: { draining: false, running: 0 } };

/** Polls `check` every 10 ms until it holds, for at most 20 s (a condition, not a sleep). */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('cluster membership on PostgreSQL', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase('membership');
  });
  after(async () => {
    await database?.drop();
  });

  it('declares a silent node lost once, decides its jobs (lost, retried, released), and tells it so when it beats again', async () => {
    const clock = new ManualClock(T0);
    const one = await PgJobStore.open(database.url, { clock });
    const two = await PgJobStore.open(database.url, { clock });
    try {
      const a = await NodeMembership.join({
        nodes: one.nodes,
        jobs: one,
        self: { id: 'a', url: 'http://a' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      const b = await NodeMembership.join({
        nodes: two.nodes,
        jobs: two,
        self: { id: 'b', url: 'http://b' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      assert.equal(a.previous, undefined);
      // Node b runs one job without a retry policy and one with, and holds a claim it never started.
      const plain = makeJob({ spec: { queue: 'q' } });
      const retried = makeJob({
        spec: { queue: 'q', retry: { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } } },
      });
      const claimed = makeJob({ spec: { queue: 'q' } });
      for (const job of [plain, retried, claimed]) await two.admitJob(job, T0);
      const claims = await two.claimReady('q', 'b', 3);
      assert.equal(claims.length, 3);
      for (const job of [plain, retried]) {
        await two.markStarted(job.id, { pid: 999_999, startTicks: 1, bootId: 'x', cgroups: [] }, T0);
      }
      // a keeps beating; b falls silent past the timeout.
      clock.advance(TIMEOUT_MS + 1);
      const outcomes: string[] = [];
      const lost = await one.nodes.declareLost(new Date(clock.now().getTime() - TIMEOUT_MS), () => 'test');
      // Declared by one sweeper only: the second sweep finds nothing to declare.
      assert.deepEqual(lost.map((n) => n.id).sort(), ['a', 'b']);
      assert.deepEqual(
        await two.nodes.declareLost(new Date(clock.now().getTime() - TIMEOUT_MS), () => 'again'),
        [],
      );
      const nodeB = lost.find((n) => n.id === 'b')!;
      const outcome = await decideLostNodeJobs(one, nodeB, clock.now());
      outcomes.push(...outcome.lost.map((j) => `${j.id === plain.id ? 'plain' : 'retried'}:${j.status}`));
      assert.deepEqual(outcomes.sort(), ['plain:lost', 'retried:lost']);
      const decided = (await one.getJob(plain.id))!;
      assert.match(decided.exit!.reason!, /^node b \(http:\/\/b\) was lost: no heartbeat since /);
      const first = (await one.getJob(retried.id))!;
      assert.ok(first.retriedAs, 'the job with a retry policy got its next attempt');
      const next = (await one.getJob(first.retriedAs))!;
      assert.equal(next.status, 'queued');
      assert.equal(next.attempt, 2);
      assert.deepEqual(
        outcome.released.map((j) => j.id),
        [claimed.id],
      );
      assert.equal((await one.getJob(claimed.id))!.hold, null);
      // The jobs decided while b was lost, as b finds them when it comes back.
      const whileLost = await two.nodes.jobsDecidedWhileLost('b', T0);
      assert.deepEqual(whileLost.map((j) => j.id).sort(), [plain.id, retried.id].sort());
      // b's heartbeat does not revive it: its record says it was lost, and its next beat rejoins.
      assert.equal((await two.nodes.heartbeat('b', clock.now()))?.state, 'lost');
      b.membership.start(NOT_DRAINING);
      await b.membership.beat();
      assert.equal((await one.nodes.getNode('b'))?.state, 'active');
      await b.membership.close({ leave: 'test over' });
      await a.membership.close();
      assert.equal((await one.nodes.getNode('b'))?.state, 'left');
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('a node found lost gives up the jobs decided without it: their processes are killed, nothing is recorded', async () => {
    const clock = new ManualClock(T0);
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-membership-'));
    const store = await PgJobStore.open(database.url, { clock });
    const other = await PgJobStore.open(database.url, { clock });
    const engine = await JobEngine.open({ node: 'frozen', dataDir, store, clock });
    try {
      const { membership } = await NodeMembership.join({
        nodes: store.nodes,
        jobs: store,
        self: { id: 'frozen', url: 'http://frozen' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      membership.start(engine);
      const pidFile = join(dataDir, 'pid');
      const job = await engine.start(
        { command: 'sh', args: ['-c', `echo $$ > ${pidFile}; exec sleep 1000`] },
        { user: 'root' },
      );
      await until('the job to run', async () => (await store.getJob(job.id))?.status === 'running');
      await until(
        'the pid file',
        async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim() !== '',
      );
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      assert.equal(await pidAlive(pid), true);
      // Cut off: the others declare it lost and decide its job.
      const [lost] = await other.nodes.declareLost(new Date(clock.now().getTime() + 1), () => 'cut off');
      assert.equal(lost?.id, 'frozen');
      await decideLostNodeJobs(other, lost, clock.now());
      assert.equal((await other.getJob(job.id))?.status, 'lost');
      // Its next beat finds out: the process goes, the record stays as decided, and it rejoins.
      await membership.beat();
      await until('the process to be gone', async () => !(await pidAlive(pid)));
      const stored = (await store.getJob(job.id))!;
      assert.equal(stored.status, 'lost');
      assert.match(stored.exit!.reason!, /node frozen/);
      assert.equal((await store.nodes.getNode('frozen'))?.state, 'active');
      await membership.close();
    } finally {
      await engine.close();
      await store.close();
      await other.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('every node removes the directories of deleted jobs on its own disk only', async () => {
    const store = await PgJobStore.open(database.url);
    try {
      const mine = makeJob({ status: 'succeeded', node: 'here' });
      const theirs = makeJob({ status: 'succeeded', node: 'there' });
      await store.insertJob(mine);
      await store.insertJob(theirs);
      await store.deleteJob(mine.id);
      await store.deleteJob(theirs.id);
      assert.deepEqual(await store.listDirsToRemove(10, 'here'), [mine.id]);
      assert.deepEqual(await store.listDirsToRemove(10, 'there'), [theirs.id]);
      await store.forgetDirsRemoved([mine.id, theirs.id]);
    } finally {
      await store.close();
    }
  });

  it('a token issued or revoked on one node is honoured or refused on another once the store says so', async () => {
    const one = await PgJobStore.open(database.url);
    const two = await PgJobStore.open(database.url);
    try {
      const dirOne = await UserDirectory.open(one.users);
      await dirOne.addUser({ name: `carol${newJobId().slice(-6)}`, role: 'user' }).catch(() => undefined);
      const name = dirOne.listUsers()[0]!.name;
      const dirTwo = await UserDirectory.open(two.users);
      const unwatch = await two.watch((event) => {
        if (event.channel === 'accounts') void dirTwo.reload();
      });
      try {
        const { token, record } = await dirOne.issueToken({ user: name });
        await until('node two to know the token', () => dirTwo.authenticate(token)?.user === name);
        await dirOne.revokeToken(record.id);
        await until('node two to refuse the revoked token', () => dirTwo.authenticate(token) === undefined);
      } finally {
        await unwatch();
      }
    } finally {
      await one.close();
      await two.close();
    }
  });
});
