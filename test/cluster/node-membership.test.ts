import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { UserDirectory } from '../../src/auth/user-directory.ts';
import { ClusterNode, type ClusterNodeOptions } from '../../src/cluster/cluster-node.ts';
import { decideLostNodeJobs } from '../../src/cluster/lost-node-jobs.ts';
import { NodeMembership } from '../../src/cluster/node-membership.ts';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import { ClaimLostError, JobworkerError } from '../../src/core/errors.ts';
import { newJobId } from '../../src/core/ids.ts';
import { type Job, TIMEOUT_STOPPER } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import type { NodeRecord } from '../../src/store/node-store.ts';
import { PgJobStore, SKIPPED_QUEUE_RETRY_MS } from '../../src/store/postgres/pg-job-store.ts';
import { failingOnce } from '../helpers/failing-once.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { pidAlive, until } from '../helpers/wait.ts';
import { makeJob } from '../store/make-job.ts';

const T0 = new Date(Date.UTC(2026, 11, 2, 12, 0, 0));
const TIMEOUT_MS = 30_000;
const NOT_DRAINING = { relinquishDecided: async () => [], drainState: { draining: false, running: 0 } };

/** A cluster node of `store` named `id` whose log goes nowhere (unless `options` say otherwise). */
function quietNode(
  store: PgJobStore,
  id: string,
  clock: Clock,
  options: Partial<Omit<ClusterNodeOptions, 'store' | 'clock'>> = {},
): ClusterNode {
  return new ClusterNode({
    store,
    self: { id, url: `http://${id}` },
    clock,
    timeoutMs: TIMEOUT_MS,
    log: { info: () => {}, warn: () => {}, error: () => {} },
    ...options,
  });
}

/**
 * Makes node `id` silent for longer than the node timeout, as the store's clock sees it (which is
 * what sweeps judge by, whatever the nodes' clocks say): its last heartbeat moved back.
 */
async function silence(url: string, id: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('update nodes set heartbeat_at = heartbeat_at - $2 where id = $1', [
      id,
      TIMEOUT_MS + 1,
    ]);
  } finally {
    await client.end();
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
      const decided: { node: string; lost: string[]; released: string[]; cancelled: string[] }[] = [];
      const a = await NodeMembership.join({
        nodes: one.nodes,
        jobs: one,
        self: { id: 'a', url: 'http://a' },
        clock,
        timeoutMs: TIMEOUT_MS,
        onLostNode: (node, outcome) =>
          decided.push({
            node: node.id,
            lost: outcome.lost.map((j) => j.id),
            released: outcome.released.map((j) => j.id),
            cancelled: outcome.cancelled.map((j) => j.id),
          }),
      });
      const b = await NodeMembership.join({
        nodes: two.nodes,
        jobs: two,
        self: { id: 'b', url: 'http://b' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      assert.equal(a.previous, undefined);
      await a.membership.start(NOT_DRAINING);
      // Node b runs one job without a retry policy and one with, and holds a claim it never started,
      // and one that a user stopped while it was claimed (the stop is recorded for its launch).
      const plain = makeJob({ spec: { queue: 'q' } });
      const retried = makeJob({
        spec: { queue: 'q', retry: { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } } },
      });
      // And one with a retry policy that its timeout was stopping when a user stopped it too,
      // through another node (`recordStop`): it is not retried.
      const timedOut = makeJob({ spec: { ...retried.spec, queue: 'q' } });
      const claimed = makeJob({ spec: { queue: 'q' } });
      const stopped = makeJob({ spec: { queue: 'q' } });
      for (const job of [plain, retried, timedOut, claimed, stopped]) await two.admitJob(job, T0);
      assert.equal((await two.claimReady('q', 'b', 5)).length, 5);
      await two.cancelQueued(stopped.id, { at: T0, by: 'bob', graceMs: 0 }, 'cancelled by bob');
      for (const job of [plain, retried, timedOut]) {
        await two.markStarted(job.id, { pid: 999_999, startTicks: 1, bootId: 'x', cgroups: [] }, T0, 'b');
      }
      await two.markStopRequested(timedOut.id, { at: T0, by: TIMEOUT_STOPPER, graceMs: 60_000 });
      await one.markStopRequested(timedOut.id, { at: T0, by: 'carol', graceMs: 0 });
      // b falls silent; a beats on (its timer, on the manual clock) and, healthy for a whole
      // timeout, sweeps.
      await b.membership.close();
      await silence(database.url, 'b');
      clock.advance(TIMEOUT_MS + 1);
      await a.membership.beat();
      assert.deepEqual(
        decided.map((d) => d.node),
        ['b'],
      );
      assert.deepEqual(decided[0]!.lost.sort(), [plain.id, retried.id, timedOut.id].sort());
      assert.deepEqual(decided[0]!.released, [claimed.id]);
      // The stopped claim is cancelled, not put back for another node to run.
      assert.deepEqual(decided[0]!.cancelled, [stopped.id]);
      const cancelled = (await one.getJob(stopped.id))!;
      assert.deepEqual([cancelled.status, cancelled.hold], ['cancelled', null]);
      assert.equal(cancelled.exit?.reason, 'cancelled by bob before it started');
      assert.equal((await one.nodes.getNode('b'))?.state, 'lost');
      assert.equal((await one.nodes.getNode('a'))?.state, 'active');
      const lostPlain = (await one.getJob(plain.id))!;
      assert.equal(lostPlain.status, 'lost');
      assert.match(lostPlain.exit!.reason!, /^node b \(http:\/\/b\) was lost: no heartbeat since /);
      const first = (await one.getJob(retried.id))!;
      assert.equal(first.status, 'lost');
      assert.ok(first.retriedAs, 'the job with a retry policy got its next attempt');
      const next = (await one.getJob(first.retriedAs))!;
      assert.equal(next.status, 'queued');
      assert.equal(next.attempt, 2);
      const notRetried = (await one.getJob(timedOut.id))!;
      assert.deepEqual([notRetried.status, notRetried.retriedAs], ['lost', null]);
      assert.match(notRetried.exit!.reason!, /was lost: no heartbeat since .*; stopped by carol meanwhile$/);
      assert.equal((await one.getJob(claimed.id))!.hold, null);
      // Nothing is left to decide: a second sweeper finds nothing.
      assert.deepEqual(
        await two.nodes.declareLost(
          TIMEOUT_MS,
          () => 'again',
          async () => {},
        ),
        [],
      );

      // b, still running somewhere, claims again before it learns it was lost; it cannot start
      // the job whose claim it lost, and a later sweep gives its new claim back.
      await assert.rejects(
        two.markStarted(claimed.id, { pid: 1, startTicks: 1, bootId: 'x', cgroups: [] }, clock.now(), 'b'),
        ClaimLostError,
      );
      const late = await two.claimReady('q', 'b', 1);
      assert.equal(late.length, 1);
      const again: string[] = [];
      const swept = await one.nodes.declareLost(
        TIMEOUT_MS,
        () => 'unused',
        async (node) => {
          again.push(...(await decideLostNodeJobs(one, node, clock.now())).released.map((j) => j.id));
        },
      );
      assert.deepEqual(
        swept.map((n) => n.id),
        ['b'],
      );
      assert.deepEqual(again, [late[0]!.id]);

      // A drain of a lost node does not hide its loss from it; leaving needs no job on record.
      await two.nodes.setDraining('b', true);
      assert.equal((await one.nodes.getNode('b'))?.state, 'lost');
      assert.equal(await two.nodes.leave('b', 'nope'), false);
      // The jobs decided while b was lost, as b finds them when it comes back.
      const whileLost = await two.nodes.jobsDecidedWhileLost('b', T0);
      assert.deepEqual(whileLost.map((j) => j.id).sort(), [plain.id, retried.id, timedOut.id].sort());
      // b comes back: it learns it was lost (read under its row's lock), and joins as active.
      const back = await NodeMembership.join({
        nodes: two.nodes,
        jobs: two,
        self: { id: 'b', url: 'http://b' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      assert.equal(back.previous?.state, 'lost');
      assert.equal((await one.nodes.getNode('b'))?.state, 'active');
      assert.equal(await back.membership.close({ leave: 'test over' }), true);
      assert.equal((await one.nodes.getNode('b'))?.state, 'left');
      await a.membership.close();
    } finally {
      await one.close();
      await two.close();
    }
  });

  it("judges silence by the store's clock: nodes whose clocks are a day ahead and a day behind are not declared lost", async () => {
    const DAY = 24 * 3600 * 1000;
    const ahead = new ManualClock(new Date(Date.now() + DAY));
    const behind = new ManualClock(new Date(Date.now() - DAY));
    const one = await PgJobStore.open(database.url, { clock: ahead });
    const two = await PgJobStore.open(database.url, { clock: behind });
    const declared: string[] = [];
    try {
      const members = [];
      for (const [store, clock, id] of [
        [one, ahead, 'clock-ahead'],
        [two, behind, 'clock-behind'],
      ] as const) {
        const { membership } = await NodeMembership.join({
          nodes: store.nodes,
          jobs: store,
          self: { id, url: `http://${id}` },
          clock,
          timeoutMs: TIMEOUT_MS,
          onLostNode: (node) => declared.push(node.id),
        });
        await membership.start(NOT_DRAINING);
        members.push(membership);
      }
      // Each beats, healthy for a whole timeout on its own clock, and sweeps.
      ahead.advance(TIMEOUT_MS + 1);
      behind.advance(TIMEOUT_MS + 1);
      for (const membership of members) await membership.beat();
      assert.deepEqual(
        declared.filter((id) => id.startsWith('clock-')),
        [],
      );
      for (const id of ['clock-ahead', 'clock-behind'])
        assert.equal((await one.nodes.getNode(id))?.state, 'active');
      for (const membership of members) await membership.close();
    } finally {
      await one.close();
      await two.close();
    }
  });

  it("holds a lost node's row while its jobs are decided: its beat finds it lost, and its join waits", async () => {
    const clock = new ManualClock(T0);
    const store = await PgJobStore.open(database.url, { clock });
    const other = await PgJobStore.open(database.url, { clock });
    try {
      await store.nodes.join({ id: 'held', url: 'http://held' });
      await silence(database.url, 'held');
      const order: string[] = [];
      let join: Promise<unknown> | undefined;
      await other.nodes.declareLost(
        TIMEOUT_MS,
        () => 'held for the test',
        async (node) => {
          if (node.id !== 'held') return;
          // The declaration is committed before the decisions: the node's beat learns of it at
          // once (it does not wait for this sweep)...
          assert.equal((await store.nodes.heartbeat('held'))?.state, 'lost');
          // ...and the join it then makes waits for the decisions.
          join = store.nodes
            .join({ id: 'held', url: 'http://held' })
            .then(({ previous }) => order.push(`join: ${previous?.state}`));
          // Give the join every chance to get through while the row is held.
          for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
          await store.getJob(newJobId());
          order.push('decided');
        },
      );
      await join;
      assert.deepEqual(order, ['decided', 'join: lost']);
    } finally {
      await store.close();
      await other.close();
    }
  });

  it('ends the sessions of a node it declares lost, so that a row its frozen transaction holds does not hold up the decision; not its hold on its id', async () => {
    const clock = new ManualClock(T0);
    const one = await PgJobStore.open(database.url, { clock, nodeId: 'ends-a' });
    const two = await PgJobStore.open(database.url, { clock, nodeId: 'frozen-b' });
    // Node b, frozen in the middle of a transaction on its running job (a session of its pools,
    // as its name says): the row stays locked for as long as the session lives.
    assert.ok(two.sessionName);
    const frozen = new pg.Client({ connectionString: database.url, application_name: two.sessionName });
    frozen.on('error', () => {});
    const frozenEnded = new Promise<void>((resolve) => frozen.on('end', resolve));
    const errors: Error[] = [];
    try {
      const releaseId = await two.holdNodeId('frozen-b', { log: () => {} });
      const a = await NodeMembership.join({
        nodes: one.nodes,
        jobs: one,
        self: { id: 'ends-a', url: 'http://ends-a' },
        clock,
        timeoutMs: TIMEOUT_MS,
        onError: (err) => errors.push(err),
      });
      await a.membership.start(NOT_DRAINING);
      const b = await NodeMembership.join({
        nodes: two.nodes,
        jobs: two,
        self: { id: 'frozen-b', url: 'http://frozen-b' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      const job = makeJob({ spec: { queue: 'frozen-q' } });
      await two.admitJob(job, T0);
      assert.equal((await two.claimReady('frozen-q', 'frozen-b', 1)).length, 1);
      await two.markStarted(
        job.id,
        { pid: 999_995, startTicks: 1, bootId: 'x', cgroups: [] },
        T0,
        'frozen-b',
      );
      await frozen.connect();
      await frozen.query('begin');
      await frozen.query('select id from jobs where id = $1 for update', [job.id]);
      await b.membership.close();
      await silence(database.url, 'frozen-b');
      clock.advance(TIMEOUT_MS + 1);
      await a.membership.beat();
      assert.deepEqual(errors, []);
      assert.equal((await one.getJob(job.id))?.status, 'lost');
      await frozenEnded;
      // Its hold on its id stays: no second server may take the id while it may still run.
      const look = new pg.Client({ connectionString: database.url });
      await look.connect();
      const { rows } = await look
        .query<{ n: string }>(
          `select count(*) as n from pg_stat_activity where application_name = 'jobworker node frozen-b'`,
        )
        .finally(() => look.end());
      assert.equal(Number(rows[0]!.n), 1);
      await a.membership.close();
      await releaseId();
    } finally {
      await frozen.end().catch(() => {});
      await one.close();
      await two.close();
    }
  });

  it('ends the sessions of the server that last joined as the node it declares lost, not those of a server starting again under its id', async () => {
    const sweeper = await PgJobStore.open(database.url, { nodeId: 'sweeps-restarted' });
    // The server that ran as the node, silent now (stopped, or frozen).
    const old = await PgJobStore.open(database.url, { nodeId: 'restarting' });
    let fresh: PgJobStore | undefined;
    let pinned: pg.Client | undefined;
    const look = new pg.Client({ connectionString: database.url });
    await look.connect();
    const sessions = async (where: string): Promise<string[]> => {
      const { rows } = await look.query<{ name: string }>(
        `select application_name as name from pg_stat_activity
          where datname = current_database() and application_name like 'jobworker restarting%' and ${where}`,
      );
      return rows.map((r) => r.name);
    };
    try {
      await old.nodes.join({ id: 'restarting', url: 'http://restarting' });
      // A session of the old server's, in the middle of a transaction, named as its pools name theirs.
      const [oldName] = await sessions('true');
      assert.ok(oldName);
      pinned = new pg.Client({ connectionString: database.url, application_name: oldName });
      pinned.on('error', () => {});
      const pinnedEnded = new Promise<void>((resolve) => pinned?.on('end', resolve));
      await pinned.connect();
      await pinned.query('begin');
      await pinned.query('select 1');
      await silence(database.url, 'restarting');
      // Started again under its id (systemd restarts it), and migrated, while a peer sweeps it.
      const restarted = await PgJobStore.open(database.url, { nodeId: 'restarting' });
      fresh = restarted;
      let join: Promise<{ previous?: NodeRecord }> | undefined;
      await sweeper.nodes.declareLost(
        TIMEOUT_MS,
        () => 'silent',
        async (node) => {
          if (node.id !== 'restarting') return;
          // Its join comes now, and waits while this sweep holds the node's row.
          join = restarted.nodes.join({ id: 'restarting', url: 'http://restarting' });
          join.catch(() => {});
          await until(
            'the join to wait for the row',
            async () => (await sessions(`wait_event_type = 'Lock'`)).length > 0,
          );
          await sweeper.nodes.endSessions(node.id);
        },
      );
      assert.ok(join);
      // The join went on (it was not ended with the old server's sessions), and finds it was lost.
      assert.equal((await join).previous?.state, 'lost');
      await pinnedEnded;
    } finally {
      await pinned?.end().catch(() => {});
      await look.end();
      await fresh?.close();
      await old.close();
      await sweeper.close();
    }
  });

  it('a sweep cut short while it decides (its sessions ended) keeps the declaration: the node learns it was lost', async () => {
    const sweeper = await PgJobStore.open(database.url, { nodeId: 'cut-sweeper' });
    const victim = await PgJobStore.open(database.url);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await victim.nodes.join({ id: 'cut-victim', url: 'http://cut-victim' });
      await silence(database.url, 'cut-victim');
      await assert.rejects(
        sweeper.nodes.declareLost(
          TIMEOUT_MS,
          () => 'cut short',
          async (node) => {
            if (node.id !== 'cut-victim') return;
            // The sweeper froze here, and a third node, sweeping it, ended its sessions (or its
            // host vanished): the transaction that holds the victim's row is gone.
            await admin.query(
              'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1',
              [sweeper.sessionName],
            );
          },
        ),
      );
      assert.equal((await victim.nodes.heartbeat('cut-victim'))?.state, 'lost');
    } finally {
      await admin.end();
      await sweeper.close();
      await victim.close();
    }
  });

  it('a sweep whose decisions fail keeps the declaration: the node learns it was lost, and the next sweep decides the rest', async () => {
    const store = await PgJobStore.open(database.url);
    try {
      await store.nodes.join({ id: 'flaky', url: 'http://flaky' });
      const job = makeJob({ spec: { queue: 'flaky-q' } });
      await store.admitJob(job, T0);
      assert.equal((await store.claimReady('flaky-q', 'flaky', 1)).length, 1);
      await store.markStarted(job.id, { pid: 999_999, startTicks: 1, bootId: 'x', cgroups: [] }, T0, 'flaky');
      await silence(database.url, 'flaky');
      await assert.rejects(
        store.nodes.declareLost(
          TIMEOUT_MS,
          () => 'first',
          async (node) => {
            if (node.id === 'flaky') throw new Error('the store went away');
          },
        ),
        /went away/,
      );
      assert.equal((await store.nodes.getNode('flaky'))?.state, 'lost');
      assert.equal((await store.nodes.heartbeat('flaky'))?.state, 'lost');
      // Still holding a running job: swept again, and decided this time.
      const again = await store.nodes.declareLost(
        TIMEOUT_MS,
        () => 'unused',
        async (node) => {
          if (node.id === 'flaky') await decideLostNodeJobs(store, node, T0);
        },
      );
      assert.ok(again.some((n) => n.id === 'flaky' && n.reason === 'first'));
      assert.equal((await store.getJob(job.id))?.status, 'lost');
    } finally {
      await store.close();
    }
  });

  it("settles the dependents of a lost node's job whose settling failed in the sweep, after its decisions", async () => {
    const clock = new ManualClock(T0);
    const store = await PgJobStore.open(database.url, { clock });
    // The sweeper's store, whose first settling fails (the store away a moment).
    const { object: flaky } = failingOnce(
      store,
      'settleDependents',
      new Error('the store went away a moment'),
    );
    try {
      const errors: Error[] = [];
      const { membership } = await NodeMembership.join({
        nodes: store.nodes,
        jobs: flaky,
        self: { id: 'settler', url: 'http://settler' },
        clock,
        timeoutMs: TIMEOUT_MS,
        onError: (err) => errors.push(err),
      });
      await membership.start(NOT_DRAINING);
      await store.nodes.join({ id: 'stranding', url: 'http://stranding' });
      const dep = makeJob({ spec: { queue: 'strand-q' } });
      await store.admitJob(dep, T0);
      assert.equal((await store.claimReady('strand-q', 'stranding', 1)).length, 1);
      await store.markStarted(
        dep.id,
        { pid: 999_995, startTicks: 1, bootId: 'x', cgroups: [] },
        T0,
        'stranding',
      );
      const waiting = makeJob({ spec: { queue: 'strand-q', after: [dep.id] } });
      const admitted = await store.admitJob(waiting, T0);
      assert.ok(admitted.admitted && admitted.job.hold === 'after');
      await silence(database.url, 'stranding');
      clock.advance(TIMEOUT_MS + 1);
      await membership.beat();
      assert.deepEqual(
        errors.map((e) => e.message),
        ['the store went away a moment'],
      );
      assert.equal((await store.getJob(dep.id))?.status, 'lost');
      // Its settling in the decision failed; the sweep settled it after (the lost node, holding
      // nothing more, is not swept again).
      const settled = (await store.getJob(waiting.id))!;
      assert.equal(settled.status, 'cancelled');
      assert.match(settled.exit!.reason!, new RegExp(`^dependency ${dep.id} ended lost`));
      await membership.close();
    } finally {
      await store.close();
    }
  });

  it('settles the dependents of a job the lost node recorded ended just before it died, unsettled', async () => {
    const clock = new ManualClock(T0);
    const store = await PgJobStore.open(database.url, { clock });
    try {
      const { membership } = await NodeMembership.join({
        nodes: store.nodes,
        jobs: store,
        self: { id: 'sweeper', url: 'http://sweeper' },
        clock,
        timeoutMs: TIMEOUT_MS,
      });
      await membership.start(NOT_DRAINING);
      await store.nodes.join({ id: 'dying', url: 'http://dying' });
      const dep = makeJob({ spec: { queue: 'dying-q' } });
      await store.admitJob(dep, T0);
      assert.equal((await store.claimReady('dying-q', 'dying', 1)).length, 1);
      await store.markStarted(dep.id, { pid: 999_994, startTicks: 1, bootId: 'x', cgroups: [] }, T0, 'dying');
      const waiting = makeJob({ spec: { queue: 'dying-q', after: [dep.id] } });
      const admitted = await store.admitJob(waiting, T0);
      assert.ok(admitted.admitted && admitted.job.hold === 'after');
      // The node records the end, then dies before it settles what waited for it.
      await store.markFinished(dep.id, {
        status: 'succeeded',
        exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
        finishedAt: T0,
        outputBytes: { stdout: 0, stderr: 0 },
      });
      await silence(database.url, 'dying');
      clock.advance(TIMEOUT_MS + 1);
      await membership.beat();
      const ready = (await store.getJob(waiting.id))!;
      assert.deepEqual([ready.status, ready.hold], ['queued', null], 'its dependency succeeded: it may run');
      await membership.close();
    } finally {
      await store.close();
    }
  });

  it('refuses the start of a job whose claim went to another node, whatever that job is now', async () => {
    const store = await PgJobStore.open(database.url);
    try {
      const job = makeJob({ spec: { queue: 'moved-q' } });
      await store.admitJob(job, T0);
      assert.equal((await store.claimReady('moved-q', 'x', 1)).length, 1);
      // x is swept: its claim goes back, and y claims and starts the job.
      await store.releaseClaim(job.id, 'x');
      assert.equal((await store.claimReady('moved-q', 'y', 1)).length, 1);
      const process = { pid: 999_998, startTicks: 1, bootId: 'x', cgroups: [] };
      await store.markStarted(job.id, process, T0, 'y');
      await assert.rejects(store.markStarted(job.id, { ...process, pid: 999_997 }, T0, 'x'), ClaimLostError);
      await store.markPaused(job.id, T0);
      await assert.rejects(store.markStarted(job.id, { ...process, pid: 999_997 }, T0, 'x'), ClaimLostError);
      const kept = (await store.getJob(job.id))!;
      assert.equal(kept.status, 'paused');
      assert.equal(kept.node, 'y');
      assert.equal(kept.process?.pid, 999_998);
    } finally {
      await store.close();
    }
  });

  it('a node found lost gives up the jobs decided without it: their processes are killed, nothing is recorded', async () => {
    const clock = new ManualClock(T0);
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-membership-'));
    const store = await PgJobStore.open(database.url, { clock });
    const other = await PgJobStore.open(database.url, { clock });
    const engine = await JobEngine.open({ node: 'frozen', dataDir, store, clock });
    try {
      const errors: Error[] = [];
      const { membership } = await NodeMembership.join({
        nodes: store.nodes,
        jobs: store,
        self: { id: 'frozen', url: 'http://frozen' },
        clock,
        timeoutMs: TIMEOUT_MS,
        onError: (err) => errors.push(err),
      });
      await membership.start(engine);
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
      await silence(database.url, 'frozen');
      const declared = await other.nodes.declareLost(
        TIMEOUT_MS,
        () => 'cut off',
        async (node) => {
          if (node.id === 'frozen') await decideLostNodeJobs(other, node, clock.now());
        },
      );
      assert.ok(declared.some((n) => n.id === 'frozen'));
      assert.equal((await other.getJob(job.id))?.status, 'lost');
      // Its next beat finds out: the process goes, the record stays as decided, and it rejoins.
      await membership.beat();
      assert.deepEqual(errors, []);
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

  it('a node found lost gives up a decided job deleted since, and tries again at its next beat when giving up failed', async () => {
    const clock = new ManualClock(T0);
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-membership-'));
    const store = await PgJobStore.open(database.url, { clock });
    const other = await PgJobStore.open(database.url, { clock });
    const engine = await JobEngine.open({ node: 'flaky-rejoin', dataDir, store, clock });
    try {
      const errors: Error[] = [];
      const rejoined: string[][] = [];
      // The engine as membership sees it, whose first try to give the jobs up fails (the store
      // unreachable a moment, say).
      const { object: flaky } = failingOnce(
        engine,
        'relinquishDecided',
        new Error('the store went away a moment'),
      );
      const { membership } = await NodeMembership.join({
        nodes: store.nodes,
        jobs: store,
        self: { id: 'flaky-rejoin', url: 'http://flaky-rejoin' },
        clock,
        timeoutMs: TIMEOUT_MS,
        onError: (err) => errors.push(err),
        onRejoined: (jobs) => rejoined.push(jobs.map((j) => j.id)),
      });
      await membership.start(flaky);
      const pids: number[] = [];
      const jobs = [];
      for (const name of ['deleted', 'kept']) {
        const pidFile = join(dataDir, `${name}.pid`);
        const job = await engine.start(
          { command: 'sh', args: ['-c', `echo $$ > ${pidFile}; exec sleep 1000`] },
          { user: 'root' },
        );
        await until('the job to run', async () => (await store.getJob(job.id))?.status === 'running');
        await until(
          'the pid file',
          async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim() !== '',
        );
        pids.push(Number((await readFile(pidFile, 'utf8')).trim()));
        jobs.push(job);
      }
      const [deleted, kept] = jobs as [Job, Job];
      // Waits on this node, as `jobworker wait` or a follow makes them: each hears what became of
      // its job, not the running state this node last knew.
      const waitDeleted = engine.waitFor(deleted.id).then(
        (job) => job,
        (err: unknown) => err,
      );
      const waitKept = engine.waitFor(kept.id);
      await silence(database.url, 'flaky-rejoin');
      await other.nodes.declareLost(
        TIMEOUT_MS,
        () => 'cut off',
        async (node) => {
          if (node.id === 'flaky-rejoin') await decideLostNodeJobs(other, node, clock.now());
        },
      );
      // The user deletes one of the decided jobs before the node hears of it.
      await other.deleteJob(deleted.id);

      await membership.beat();
      assert.deepEqual(
        errors.map((e) => e.message),
        ['the store went away a moment'],
      );
      assert.equal((await store.nodes.getNode('flaky-rejoin'))?.state, 'active', 'it joined again');
      assert.equal(await pidAlive(pids[0]!), true, 'nothing was given up yet');

      // The next beat finds the node active and gives the jobs up all the same, the deleted one too.
      await membership.beat();
      assert.equal(errors.length, 1);
      await until('both processes to be gone', async () => {
        const alive = await Promise.all(pids.map((pid) => pidAlive(pid)));
        return alive.every((a) => !a);
      });
      assert.deepEqual(rejoined, [[kept.id]], 'told of the jobs the store still has');
      assert.equal(
        (await waitKept).status,
        'lost',
        "the wait on the kept job gets the other node's decision",
      );
      const deletedAnswer = await waitDeleted;
      assert.ok(
        deletedAnswer instanceof JobworkerError && deletedAnswer.code === 'NOT_FOUND',
        `the wait on the deleted job is told it is gone, got ${JSON.stringify(deletedAnswer)}`,
      );
      assert.equal(await store.getJob(deleted.id), undefined);
      assert.equal((await store.getJob(kept.id))?.status, 'lost');
      // Given up once: a later beat has nothing more to do.
      await membership.beat();
      assert.deepEqual(rejoined, [[kept.id]]);
      await membership.close();
    } finally {
      await engine.close();
      await store.close();
      await other.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a second node with the same id while the first runs, and lets it join once the first has closed', async () => {
    const first = await PgJobStore.open(database.url);
    const second = await PgJobStore.open(database.url);
    const warnings: string[] = [];
    const node = (store: PgJobStore, url: string) =>
      quietNode(store, 'twin', systemClock, {
        self: { id: 'twin', url },
        timeoutMs: 300,
        nodeIdWaitMs: 300,
        log: { info: () => {}, warn: (_fields, message) => warnings.push(message), error: () => {} },
      });
    const running = node(first, 'http://twin');
    let firstClosed = false;
    try {
      await running.join();
      await assert.rejects(
        node(second, 'http://twin-elsewhere').join(),
        (err: Error & { field?: string }) => {
          assert.equal(err.field, 'nodeId');
          assert.match(err.message, /^Node id "twin" is in use by another running server/);
          return true;
        },
      );
      assert.match(warnings.join('\n'), /node id "twin" is held by another session/);
      assert.equal(
        (await second.nodes.getNode('twin'))?.url,
        'http://twin',
        "the first node's row, untouched",
      );
      // Held until its store closes, after its engine (as the server closes them): not at the
      // node's own close.
      await running.close();
      await assert.rejects(node(second, 'http://twin-elsewhere').join(), { field: 'nodeId' });
      await first.close();
      firstClosed = true;
      const after = node(second, 'http://twin-elsewhere');
      await after.join();
      assert.equal((await second.nodes.getNode('twin'))?.url, 'http://twin-elsewhere');
      await after.close();
    } finally {
      await running.close();
      if (!firstClosed) await first.close();
      await second.close();
    }
  });

  it('tells a wait on this node that a job ended on another, as the store notifies it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-ended-'));
    const here = await PgJobStore.open(database.url);
    const there = await PgJobStore.open(database.url);
    const engine = await JobEngine.open({ node: 'here', dataDir, store: here });
    // The job is to run on the other node: this one must not claim it first (its dispatcher, told
    // of the admission, won that race on a loaded machine).
    engine.drain();
    const node = quietNode(here, 'here', systemClock);
    try {
      await node.join();
      await node.start({ engine, reloadAccounts: async () => {} });
      const job = makeJob({ spec: { queue: 'elsewhere-q' } });
      await there.admitJob(job, T0);
      assert.equal((await there.claimReady('elsewhere-q', 'there', 1)).length, 1);
      await there.markStarted(job.id, { pid: 999_996, startTicks: 1, bootId: 'x', cgroups: [] }, T0, 'there');
      const waits = new AbortController();
      const ended = node.routing.ended!(job.id, waits.signal);
      const finished = await there.markFinished(job.id, {
        status: 'succeeded',
        exit: { exitCode: 0, signal: null, reason: 'exited 0' },
        finishedAt: T0,
        outputBytes: { stdout: 0, stderr: 0 },
      });
      assert.equal(finished.status, 'succeeded');
      await ended;
    } finally {
      await node.close();
      await engine.close();
      await here.close();
      await there.close();
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

describe("a cluster node's wake-ups: delayed jobs, reloads of users and tokens", () => {
  let database: TestDatabase;
  before(async () => {
    // A database of its own: no other test's delayed job may wake this node's dispatcher.
    database = await createTestDatabase('wakeups');
  });
  after(async () => {
    await database?.drop();
  });

  it('starts a job that another node delayed, at its time, on the store notification alone', async () => {
    const clock = new ManualClock(T0);
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-due-'));
    const here = await PgJobStore.open(database.url, { clock });
    const there = await PgJobStore.open(database.url, { clock });
    const engine = await JobEngine.open({ node: 'due-here', dataDir, store: here, clock });
    const node = quietNode(here, 'due-here', clock);
    try {
      await node.join();
      await node.start({ engine, reloadAccounts: async () => {} });
      // Its first pass found no delayed job: this node's dispatcher sleeps with no timer for one.
      await engine.dispatch();
      // Another node (which then leaves, or swept a lost one and retried its job) delays a job.
      const runAt = new Date(T0.getTime() + 60_000);
      const job = makeJob({ runAt, spec: { queue: 'due-q', command: 'true', args: [] } });
      const admission = await there.admitJob(job, T0);
      assert.ok(admission.admitted);
      assert.equal(admission.job.hold, 'delay');
      clock.advance(60_000);
      await until('the delayed job to be run here', async () => {
        const stored = await there.getJob(job.id);
        return stored !== undefined && stored.status !== 'queued';
      });
      const ran = (await there.getJob(job.id))!;
      assert.equal(ran.node, 'due-here');
      assert.ok(ran.startedAt === null || ran.startedAt.getTime() >= runAt.getTime());
    } finally {
      await node.close();
      await engine.close();
      await here.close();
      await there.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('passes over a queue whose row a frozen node holds, serves the others, and starts its jobs on the clock once the row is free', async () => {
    const clock = new ManualClock(T0);
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-held-'));
    const here = await PgJobStore.open(database.url, { clock });
    const engine = await JobEngine.open({ node: 'unheld', dataDir, store: here, clock });
    const node = quietNode(here, 'unheld', clock);
    const frozen = new pg.Client({ connectionString: database.url });
    await frozen.connect();
    try {
      await node.join();
      await node.start({ engine, reloadAccounts: async () => {} });
      // Another node froze in the middle of a claim of `a-held-q` (first in a pass's order), holding
      // its row as a claim does; admissions to it (`for key share`) do not wait for that.
      await here.putQueue('a-held-q', {});
      await frozen.query('begin');
      await frozen.query(`select * from queues where name = 'a-held-q' for no key update`);
      const held = makeJob({ spec: { queue: 'a-held-q', command: 'true', args: [] } });
      const served = makeJob({ spec: { queue: 'b-served-q', command: 'true', args: [] } });
      await here.admitJob(held, T0);
      await here.admitJob(served, T0);
      // The pass ends, rather than wait behind the frozen node, and the next queue's job starts.
      await engine.dispatch();
      await until(
        'the job of the other queue to start',
        async () => (await here.getJob(served.id))?.status !== 'queued',
      );
      assert.equal((await here.getJob(held.id))?.status, 'queued');
      // The frozen node's session ends (its timeout, or a sweep); nothing tells this node, whose
      // store looks at the queue again on the clock.
      await frozen.query('rollback');
      clock.advance(SKIPPED_QUEUE_RETRY_MS);
      await until(
        "the held queue's job to start",
        async () => (await here.getJob(held.id))?.status !== 'queued',
      );
      assert.equal((await here.getJob(held.id))?.node, 'unheld');
    } finally {
      await frozen.end();
      await node.close();
      await engine.close();
      await here.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  // Each in a test of its own: a job that ran on node y before the change would wake y's dispatcher
  // when it ended, and that pass, not the change, could start the job.
  for (const { change, queue, before, wakes } of [
    { change: 'a resume', queue: 'resume-q', before: { paused: true }, wakes: { paused: false } },
    { change: 'a higher limit', queue: 'limit-q', before: { concurrency: 1 }, wakes: { concurrency: 2 } },
  ]) {
    it(`${change} through a node that takes no work wakes another, which starts the job`, async () => {
      const clock = new ManualClock(T0);
      const dirs = [await mkdtemp(join(tmpdir(), 'jw-wake-x-')), await mkdtemp(join(tmpdir(), 'jw-wake-y-'))];
      const xStore = await PgJobStore.open(database.url, { clock });
      const yStore = await PgJobStore.open(database.url, { clock });
      const x = await JobEngine.open({ node: `${queue}-x`, dataDir: dirs[0]!, store: xStore, clock });
      // Node x drains: it takes no work (as one at its --max-running would).
      x.drain();
      const xNode = quietNode(xStore, `${queue}-x`, clock);
      let y: JobEngine | undefined;
      let yNode: ClusterNode | undefined;
      try {
        await xNode.join();
        await xNode.start({ engine: x, reloadAccounts: async () => {} });
        await x.setQueue(queue, before);
        if (before.concurrency !== undefined) {
          // The queue's one slot is held by a job running on a third node.
          const holding = makeJob({ spec: { queue, command: 'true', args: [] } });
          await xStore.admitJob(holding, T0);
          assert.equal((await xStore.claimReady(queue, 'wake-z', 1)).length, 1);
          await xStore.markStarted(
            holding.id,
            { pid: 999_994, startTicks: 1, bootId: 'x', cgroups: [] },
            T0,
            'wake-z',
          );
        }
        const waiting = makeJob({ spec: { queue, command: 'true', args: [] } });
        await xStore.admitJob(waiting, T0);
        // Node y comes up, and its first pass leaves the job waiting.
        y = await JobEngine.open({ node: `${queue}-y`, dataDir: dirs[1]!, store: yStore, clock });
        yNode = quietNode(yStore, `${queue}-y`, clock);
        await yNode.join();
        await yNode.start({ engine: y, reloadAccounts: async () => {} });
        await y.dispatch();
        assert.equal((await yStore.getJob(waiting.id))?.status, 'queued');
        // An admin changes the queue through node x: node y hears of it and starts the job.
        await x.setQueue(queue, wakes);
        await until(
          'the job to start on y',
          async () => (await yStore.getJob(waiting.id))?.status !== 'queued',
        );
        assert.equal((await yStore.getJob(waiting.id))?.node, `${queue}-y`);
      } finally {
        await yNode?.close();
        await xNode.close();
        await y?.close();
        await x.close();
        await yStore.close();
        await xStore.close();
        for (const dir of dirs) await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('reloads users and tokens again on the clock when a reload fails, until one succeeds', async () => {
    const clock = new ManualClock(T0);
    const store = await PgJobStore.open(database.url, { clock });
    const node = quietNode(store, 'reloader', clock);
    let calls = 0;
    const engine = {
      ...NOT_DRAINING,
      dispatch: async () => {},
      delayedElsewhere: () => {},
      on: () => undefined,
    };
    try {
      await node.join();
      // The reload at start fails (the store busy a moment): a revocation it would have carried
      // must not wait for some later change of the users.
      await node.start({
        engine,
        reloadAccounts: async () => {
          calls++;
          if (calls === 1) throw new Error('the store is busy');
        },
      });
      await until('the reload to be tried again', () => {
        clock.advance(1000);
        return calls >= 2;
      });
      // It succeeded: no more tries.
      clock.advance(60_000);
      assert.equal(calls, 2);
    } finally {
      await node.close();
      await store.close();
    }
  });
});
