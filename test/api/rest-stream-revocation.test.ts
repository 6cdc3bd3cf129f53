import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { UserDirectory } from '../../src/auth/user-directory.ts';
import { JobworkerError } from '../../src/core/errors.ts';
import { OUTPUT_FRAMES_TYPE } from '../../src/core/output-frames.ts';
import { JobService } from '../../src/service/job-service.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { LiveResponse } from '../helpers/live-response.ts';
import { type AppHarness, openApp, rpcJobs } from '../helpers/rest-app-harness.ts';

/**
 * A stream is authorized once, when it opens, and may last as long as its job: what authorized it
 * going (a token revoked, the user disabled, removed or given another role) must end it, or a
 * leaked token would keep reading every job's events and output after its revocation.
 */

describe('open streams end when their user loses what authorized them (REST and RPC)', () => {
  let h: Harness;
  let a: AppHarness;
  let quiet: string;
  before(async () => {
    h = await openHarness();
    a = await openApp(h, { tls: true });
    // A job that prints once and then stays quiet: its follows wait for good.
    const job = await a.service.start(
      { user: 'alice', role: 'user' },
      { command: 'sh', args: ['-c', 'echo hello; exec sleep 600'] },
    );
    quiet = job.id;
  });
  after(async () => {
    await h.engine.stop(quiet, { user: 'root' }).catch(() => undefined);
    await a.close();
    await h.destroy();
  });

  const follow = (token: string, accept = OUTPUT_FRAMES_TYPE) =>
    LiveResponse.open(a, token, `/v1/jobs/${quiet}/output?follow=true`, accept);
  const events = (token: string) => LiveResponse.open(a, token, '/v1/events', 'text/event-stream');

  it("cuts a revoked token's follows and event watches, and leaves another user's open", async () => {
    await a.accounts.addUser({ name: 'alice', role: 'user' });
    const alice = await a.accounts.issueToken({ user: 'alice' });
    const viewer = await a.issue('vera', 'viewer');
    const admin = await a.issue('root', 'admin');
    const frames = await follow(alice.token);
    const sse = await follow(alice.token, 'text/event-stream');
    const watch = await events(alice.token);
    const others = await follow(viewer);
    for (const live of [frames, sse, watch, others]) assert.equal(live.status, 200);
    await frames.until((l) => l.bytes > 0);
    await others.until((l) => l.bytes > 0);
    // Through the API, as an admin does it.
    const revoked = await fetchAs(a, admin, 'DELETE', `/v1/tokens/${alice.record.id}`);
    assert.equal(revoked, 200);
    for (const live of [frames, sse, watch]) {
      await live.until((l) => l.ended !== undefined);
      assert.equal(live.ended, 'cut', 'cut, not ended as if whole');
    }
    assert.equal(others.ended, undefined, "vera's follow goes on");
    assert.equal(a.service.streamingUsers, 1);
    others.close();
    await others.until((l) => l.ended !== undefined);
    // Opened again with the revoked token: asked for credentials.
    assert.equal((await follow(alice.token)).status, 401);
  });

  it('cuts the streams of a user disabled, given another role, or removed', async () => {
    const changes: [string, (name: string) => Promise<unknown>][] = [
      ['disabled', (name) => a.accounts.setUser(name, { disabled: true })],
      ['demoted', (name) => a.accounts.setUser(name, { role: 'viewer' })],
      ['removed', (name) => a.accounts.removeUser(name)],
    ];
    for (const [what, change] of changes) {
      const name = `bob-${what}`;
      const token = await a.issue(name, 'admin');
      const live = await follow(token);
      const watch = await events(token);
      await live.until((l) => l.bytes > 0);
      await change(name);
      await live.until((l) => l.ended !== undefined);
      await watch.until((l) => l.ended !== undefined);
      assert.deepEqual([live.ended, watch.ended], ['cut', 'cut'], what);
    }
    assert.equal(a.service.streamingUsers, 0);
  });

  it('leaves the streams of a user whose run-as account changed (it applies to the jobs it starts)', async () => {
    const token = await a.issue('dana', 'user');
    const live = await follow(await a.issue('root', 'admin'));
    const own = await events(token);
    await live.until((l) => l.bytes > 0);
    await a.accounts.setUser('dana', { runAs: 'nobody' });
    // A request after the change is answered: the server has acted on it by now.
    assert.equal(await fetchAs(a, token, 'GET', '/v1/jobs'), 200);
    assert.equal(own.ended, undefined);
    own.close();
    live.close();
  });

  it('ends an RPC follow with UNAUTHENTICATED', async () => {
    await a.accounts.addUser({ name: 'erin', role: 'user' });
    const erin = await a.accounts.issueToken({ user: 'erin' });
    const own = await a.service.start(
      { user: 'erin', role: 'user' },
      { command: 'sh', args: ['-c', 'echo hi; exec sleep 600'] },
    );
    const messages = rpcJobs(a, erin.token)
      .streamOutput({ id: own.id, follow: true })
      [Symbol.asyncIterator]();
    assert.equal((await messages.next()).done, false);
    const next = messages.next();
    await a.accounts.revokeToken(erin.record.id);
    await assert.rejects(next, (err: unknown) => {
      assert.equal(ConnectError.from(err).code, Code.Unauthenticated);
      return true;
    });
    await h.engine.stop(own.id, { user: 'root' });
  });
});

describe('JobService.endStreamsOf', () => {
  let h: Harness;
  let service: JobService;
  before(async () => {
    h = await openHarness();
    service = new JobService(h.engine);
  });
  after(async () => {
    await service.shutdown();
    await h.destroy();
  });
  const alice = { user: 'alice', role: 'user' } as const;
  const isRevoked = (err: unknown) => err instanceof JobworkerError && err.code === 'UNAUTHENTICATED';

  it('cuts a read of a finished output short with an error, not a quiet end', async () => {
    const job = await service.start(alice, { command: 'head', args: ['-c', '4000000', '/dev/zero'] });
    await h.engine.waitFor(job.id);
    const read = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: false });
    const first = await read.next();
    assert.equal(first.done, false);
    service.endStreamsOf('alice');
    await assert.rejects(async () => {
      for (;;) if ((await read.next()).done) return;
    }, isRevoked);
    assert.equal(service.followers, 0);
    assert.equal(service.streamingUsers, 0);
  });

  it("ends an event watch and a follow of that user's only, and later ones open as before", async () => {
    const job = await service.start(alice, { command: 'sleep', args: ['600'] });
    const watch = await service.watchEvents(alice);
    const follow = await service.openOutput(alice, job.id, { selector: 'all', cursor: 0, follow: true });
    const bobs = await service.watchEvents({ user: 'bob', role: 'viewer' });
    // Whatever each had to give already (the watch's first message) is given; then the error.
    const drain = async (stream: AsyncGenerator<unknown>) => {
      for (;;) if ((await stream.next()).done) return;
    };
    const watching = drain(watch);
    const following = drain(follow);
    service.endStreamsOf('alice');
    service.endStreamsOf('nobody-streams');
    await assert.rejects(watching, isRevoked);
    await assert.rejects(following, isRevoked);
    assert.equal(service.watchers, 1, "bob's watch goes on");
    const again = await service.watchEvents(alice);
    assert.equal(service.streamingUsers, 2);
    await again.return(undefined);
    await bobs.return(undefined);
    assert.equal(service.streamingUsers, 0);
    await h.engine.stop(job.id, { user: 'root' });
  });
});

describe('a call authorized before its credentials changed, opening a stream after', () => {
  let h: Harness;
  let service: JobService;
  const revisions = new Map<string, number>();
  before(async () => {
    h = await openHarness();
    service = new JobService(h.engine, { credentialsRevision: (user) => revisions.get(user) ?? 0 });
  });
  after(async () => {
    await service.shutdown();
    await h.destroy();
  });
  const isRevoked = (err: unknown) => err instanceof JobworkerError && err.code === 'UNAUTHENTICATED';

  it('is refused a follow, a read, an event watch and a wait, with nothing left held', async () => {
    // Authenticated at revision 0 (Caller.revision), then the user's token was revoked: no stream
    // was open to end, so the revision alone must refuse what the call opens now.
    const stale = { user: 'alice', role: 'user', revision: 0 } as const;
    const job = await service.start(stale, { command: 'sleep', args: ['600'] });
    const waiting = service.waitFor(stale, job.id);
    revisions.set('alice', 1);
    await assert.rejects(
      service.openOutput(stale, job.id, { selector: 'all', cursor: 0, follow: true }),
      isRevoked,
    );
    await assert.rejects(
      service.openOutput(stale, job.id, { selector: 'all', cursor: 0, follow: false }),
      isRevoked,
    );
    await assert.rejects(service.watchEvents(stale), isRevoked);
    assert.deepEqual([service.followers, service.watchers, service.streamingUsers], [0, 0, 0]);
    await h.engine.stop(job.id, { user: 'root' });
    await assert.rejects(waiting, isRevoked, "the wait's answer is not given either");
    // Authenticated again, at the new revision: served as before.
    const fresh = { ...stale, revision: 1 };
    const watch = await service.watchEvents(fresh);
    await watch.return(undefined);
    assert.equal((await service.waitFor(fresh, job.id)).id, job.id);
  });

  it('takes its revision from the directory when it is authenticated', async () => {
    const dir = await UserDirectory.open(h.store.users);
    await dir.addUser({ name: 'gus', role: 'user' });
    const one = await dir.issueToken({ user: 'gus' });
    const two = await dir.issueToken({ user: 'gus' });
    const authenticator = new Authenticator(dir);
    const origin = { source: '127.0.0.1', transport: 'tcp' } as const;
    assert.equal(authenticator.authenticateCall(`Bearer ${two.token}`, () => undefined, origin).revision, 0);
    await dir.revokeToken(one.record.id);
    assert.equal(dir.revision('gus'), 1);
    assert.equal(authenticator.authenticateCall(`Bearer ${two.token}`, () => undefined, origin).revision, 1);
  });
});

describe('UserDirectory onRevoked', () => {
  let h: Harness;
  const told: string[] = [];
  let dir: UserDirectory;
  before(async () => {
    h = await openHarness();
    dir = await UserDirectory.open(h.store.users, { onRevoked: (user) => told.push(user) });
  });
  after(() => h.destroy());

  it('tells of revocations, disables, role changes, removals and rotations, after they are in force', async () => {
    await dir.addUser({ name: 'root', role: 'admin' });
    await dir.addUser({ name: 'ann', role: 'admin' });
    const t = await dir.issueToken({ user: 'ann', label: 'ci' });
    assert.deepEqual(told, []);
    await dir.issueToken({ user: 'ann', label: 'ci' }, { revokeLabelled: true });
    assert.deepEqual(told.splice(0), ['ann']);
    assert.equal(dir.authenticate(t.token), undefined);
    await dir.issueToken({ user: 'ann', label: 'other' }, { revokeLabelled: true });
    assert.deepEqual(told.splice(0), [], 'nothing was rotated out');
    await dir.setUser('ann', { runAs: 'nobody' });
    await dir.setUser('ann', { disabled: true });
    await dir.setUser('ann', { disabled: false });
    await dir.setUser('ann', { role: 'user' });
    assert.deepEqual(told.splice(0), ['ann', 'ann']);
    const u = await dir.issueToken({ user: 'ann' });
    await dir.revokeToken(u.record.id);
    await dir.removeUser('ann');
    assert.deepEqual(told.splice(0), ['ann', 'ann']);
  });

  it('tells, at a reload, of what another node revoked, disabled or removed', async () => {
    const other = await UserDirectory.open(h.store.users);
    await other.addUser({ name: 'cy', role: 'user' });
    await other.addUser({ name: 'di', role: 'user' });
    await other.addUser({ name: 'ed', role: 'user' });
    const cy = await other.issueToken({ user: 'cy' });
    await dir.reload();
    assert.deepEqual(told.splice(0), [], 'additions take nothing away');
    await other.revokeToken(cy.record.id);
    await other.setUser('di', { disabled: true });
    await other.removeUser('ed');
    await dir.reload();
    assert.deepEqual(told.splice(0).sort(), ['cy', 'di', 'ed']);
    await dir.reload();
    assert.deepEqual(told, [], 'nothing changed since');
  });
});

/** One request through the app's TLS port; resolves with the status. */
function fetchAs(a: AppHarness, token: string, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, a.url),
      { method, ca: a.caPem, agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
