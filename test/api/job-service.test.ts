import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { toErrorResponse } from '../../src/api/rest/error-mapping.ts';
import type { Principal } from '../../src/auth/principal.ts';
import { JobworkerError } from '../../src/core/errors.ts';
import { JobService } from '../../src/service/job-service.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { failingOnce } from '../helpers/failing-once.ts';

const admin: Principal = { user: 'root', role: 'admin' };
const alice: Principal = { user: 'alice', role: 'user' };
const bob: Principal = { user: 'bob', role: 'user' };

describe('job service', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  /** A service, and a job of alice's that has printed `ready` and sleeps. */
  async function runningForAlice() {
    const service = new JobService(h.engine);
    const job = await service.start(alice, { command: 'sh', args: ['-c', 'printf ready; exec sleep 60'] });
    await h.engine.untilStarted(job.id);
    return { service, job };
  }

  it("tells a store failure while checking a user's `after` as such, not as an unknown job", async () => {
    const dep = await h.engine.start({ command: 'true' }, { user: 'alice' });
    const failure = new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (injected)');
    const { object: engine } = failingOnce(h.engine, 'getRecorded', failure);
    const service = new JobService(engine);
    const refused = await service.start(alice, { command: 'true', after: [dep.id] }).then(
      () => assert.fail('admitted though its dependency could not be read'),
      (err: unknown) => err,
    );
    assert.equal(refused, failure);
    // Read again, it is found: the same submission is admitted.
    const admitted = await service.start(alice, { command: 'true', after: [dep.id] });
    assert.deepEqual(admitted.spec.after, [dep.id]);
    await h.engine.waitFor(admitted.id);
  });

  it('refuses a follow beyond its limit with CAPACITY_EXHAUSTED (429), and ends follows at shutdown', async () => {
    const service = new JobService(h.engine, { maxFollowers: 1 });
    const job = await service.start(alice, { command: 'sleep', args: ['60'] });
    const first = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: true });
    const pending = first.next(); // the follow is open and waits for output
    assert.equal(service.followers, 1);
    const refused = await service
      .openOutput(admin, job.id, { selector: 'all', cursor: 0, follow: true })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    assert.equal(toErrorResponse(refused).status, 429);
    assert.equal(toErrorResponse(refused).body.error.code, 'CAPACITY_EXHAUSTED');

    await service.shutdown();
    assert.deepEqual(await pending, { value: undefined, done: true }, 'ended without an end event');
    assert.equal(service.followers, 0);
    await service.shutdown(); // idempotent
    await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
  });

  it("keeps one user to its share of the follows and event watches; the others' stay open to them", async () => {
    const service = new JobService(h.engine, { maxFollowersPerUser: 2, maxWatchersPerUser: 1 });
    const job = await service.start(alice, { command: 'sleep', args: ['60'] });
    const follow = () => service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: true });
    const first = await follow();
    const second = await follow();
    const refused = await follow().then(
      () => assert.fail('a third follow'),
      (err: unknown) => err,
    );
    assert.equal(toErrorResponse(refused).status, 429);
    assert.match((refused as Error).message, /User alice already streams 2 outputs, its limit/);
    // Another user (an admin seeing alice's job) is not held to alice's share.
    const admins = await service.openOutput(admin, job.id, { selector: 'all', cursor: 0, follow: true });
    const watch = await service.watchEvents(alice);
    await assert.rejects(service.watchEvents(alice), /User alice already has 1 event watchers, its limit/);
    const bobs = await service.watchEvents(bob);
    // A stream closed, or ended by a revocation, gives its place back.
    await first.return(undefined);
    const third = await follow();
    service.endStreamsOf('alice');
    const fourth = await follow();
    await service.watchEvents(alice).then((w) => w.return(undefined));
    for (const stream of [second, third, fourth, admins]) await stream.return(undefined);
    await watch.return(undefined);
    await bobs.return(undefined);
    assert.deepEqual([service.followers, service.watchers, service.streamingUsers], [0, 0, 0]);
    await service.shutdown();
    await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
  });

  it("opens a running job's output, and waits for it, without reading its live figures; hides it from others", async (t) => {
    const { service, job } = await runningForAlice();
    // `get` is the engine's lookup that reads a running job's output sizes and cgroup usage.
    const gets = t.mock.method(h.engine, 'get');
    try {
      await assert.rejects(service.openOutput(bob, job.id, { selector: 'all', cursor: 0, follow: true }), {
        code: 'NOT_FOUND',
      });
      await assert.rejects(service.waitFor(bob, job.id), { code: 'NOT_FOUND' });
      const stream = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: true });
      const first = await stream.next();
      assert.equal(first.done, false);
      const waited = service.waitFor(alice, job.id);
      // Stopped through the engine: the service's stop answers with the live job, so it reads them.
      await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
      assert.equal((await waited).status, 'stopped');
      await stream.return(undefined);
      assert.equal(gets.mock.callCount(), 0, 'the open, the follow and the wait looked up only the record');
    } finally {
      gets.mock.restore();
      await service.shutdown();
    }
  });

  it('reads the record of a job once to open a follow or a read of its output, however many steps need it', async (t) => {
    const { service, job } = await runningForAlice();
    const looks = t.mock.method(h.engine, 'getRecorded');
    try {
      // The visibility check, the cursor check and the follow's start: one look at the record.
      const follow = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: true });
      const first = await follow.next();
      assert.equal(first.done, false);
      assert.equal(looks.mock.callCount(), 1, 'a follow of a running job');
      await follow.return(undefined);
      looks.mock.resetCalls();
      // A read of what exists: the same, and its end event reads the job as it is then.
      const read = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: false });
      assert.equal(read.end, 5);
      const events = [];
      for await (const event of read) events.push(event.type);
      assert.deepEqual(events, ['output', 'end']);
      assert.equal(looks.mock.callCount(), 2, 'one to open the read, one (through get) for its end');
    } finally {
      looks.mock.restore();
      await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
      await service.shutdown();
    }
  });

  it('leaves no listener on its shutdown signal once waits, follows, event watches and drain waits end, however they end', async () => {
    const { service, job } = await runningForAlice();
    assert.equal(service.shutdownListeners, 0);
    // A wait its caller gives up on, and one that sees the job end.
    const gone = new AbortController();
    const waiting = service.waitFor(alice, job.id, gone.signal);
    const waitingToEnd = service.waitFor(alice, job.id);
    // A follow, read once, then left.
    const follow = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: true });
    assert.equal((await follow.next()).done, false);
    // Event watches, one of them (with a signal of its caller's) closed before it was ever read.
    const events = await service.watchEvents(admin, {});
    const unread = await service.watchEvents(admin, { signal: new AbortController().signal });
    const firstEvent = events.next();
    // A drain wait, ended when its caller goes.
    const drainGone = new AbortController();
    const draining = service.drain(admin, { wait: true, signal: drainGone.signal });
    assert.ok(service.shutdownListeners >= 3, `listening while under way: ${service.shutdownListeners}`);
    gone.abort();
    assert.equal((await waiting).status, 'running', 'the wait ended as its caller left');
    await follow.return(undefined);
    await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
    assert.equal((await waitingToEnd).status, 'stopped');
    assert.equal((await firstEvent).done, false, 'the watch saw the stop');
    await events.return(undefined);
    await unread.return(undefined);
    drainGone.abort();
    await draining;
    await service.undrain(admin);
    // And a run (start and wait) that sees its job to the end.
    assert.equal((await service.run(alice, { command: 'true' })).status, 'succeeded');
    assert.equal(service.shutdownListeners, 0);
    assert.equal(service.watchers, 0, 'every watch gave its slot back');
  });

  it("authorizes by owner: another user's job is NOT_FOUND, exactly like an unknown id; admins see all", async () => {
    const service = new JobService(h.engine);
    const job = await service.start(alice, { command: 'true' });
    await h.engine.waitFor(job.id);
    assert.equal((await service.get(admin, job.id)).owner, 'alice');
    assert.equal((await service.get(alice, job.id)).id, job.id);
    const unknown = `${job.id.slice(0, -4)}0000`;
    const asBob = await service.get(bob, job.id).catch((err: unknown) => toErrorResponse(err));
    const missing = await service.get(bob, unknown).catch((err: unknown) => toErrorResponse(err));
    assert.deepEqual(
      JSON.stringify(asBob).replace(job.id, 'ID'),
      JSON.stringify(missing).replace(unknown, 'ID'),
    );
    await assert.rejects(service.stop(bob, job.id), { code: 'NOT_FOUND' });
    await assert.rejects(service.openOutput(bob, job.id, { selector: 'all', cursor: 0, follow: false }), {
      code: 'NOT_FOUND',
    });
    const bobs = await service.list(bob, {});
    assert.equal(bobs.jobs.length, 0);
    await assert.rejects(service.stop(alice, job.id), { code: 'ALREADY_FINISHED' });
  });
});

describe('job service: the follower limit', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('defect 7: a burst of follows cannot pass the limit; a stream closed before its first read gives its slot back', async () => {
    const service = new JobService(h.engine, { maxFollowers: 2 });
    const job = await service.start(alice, { command: 'sleep', args: ['60'] });
    const request = { selector: 'all', cursor: 0, follow: true } as const;
    const opened = await Promise.allSettled(
      Array.from({ length: 10 }, () => service.openOutput(alice, job.id, request)),
    );
    const accepted = opened.filter((r) => r.status === 'fulfilled');
    assert.equal(accepted.length, 2, 'more follows than the limit were let in');
    assert.equal(service.followers, 2);
    for (const refused of opened.filter((r) => r.status === 'rejected')) {
      assert.equal(toErrorResponse(refused.reason).body.error.code, 'CAPACITY_EXHAUSTED');
    }
    // Closed without ever being read (a client gone before the first byte): the slot comes back.
    for (const stream of accepted) await stream.value.return(undefined);
    assert.equal(service.followers, 0);
    await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
  });
});

describe('JobService.delete of a job that queued jobs wait for', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it("names the waiting jobs the caller may see, and only counts other users'", async () => {
    const service = new JobService(h.engine);
    const done = await service.start(alice, { command: 'true' });
    await h.engine.waitFor(done.id);
    const running = await service.start(admin, { command: 'sleep', args: ['600'] });
    // An admin's job may wait for anyone's: it waits for alice's and for the running one.
    const admins = await service.start(admin, { command: 'true', after: [done.id, running.id] });
    const own = await service.start(alice, { command: 'true', after: [done.id] });
    // Alice's own dependent started (its one dependency had ended): only the admin's waits.
    await h.engine.waitFor(own.id);
    const refusal = async (who: Principal) =>
      service.delete(who, done.id).then(
        () => assert.fail('deleted'),
        (err: Error) => err,
      );
    const hers = await refusal(alice);
    assert.equal(toErrorResponse(hers).body.error.code, 'IN_USE');
    assert.ok(!hers.message.includes(admins.id), hers.message);
    assert.match(hers.message, /cannot be deleted: queued 1 job of other users waits for it/);
    const theirs = await refusal(admin);
    assert.match(theirs.message, new RegExp(`queued job ${admins.id} waits for it`));
    await h.engine.stop(running.id, { user: 'root' });
  });
});
