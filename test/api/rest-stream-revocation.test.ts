import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { Code, ConnectError } from '@connectrpc/connect';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { UserDirectory } from '../../src/auth/user-directory.ts';
import { JobworkerError } from '../../src/core/errors.ts';
import { OUTPUT_FRAMES_TYPE } from '../../src/core/output-frames.ts';
import { JobService } from '../../src/service/job-service.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { LiveResponse } from '../helpers/live-response.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
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
    ({ h, a, quiet } = await openWithQuietJob('alice'));
  });
  after(() => closeWithQuietJob(h, a, quiet));

  const follow = (token: string, accept = OUTPUT_FRAMES_TYPE) =>
    LiveResponse.open(a, token, `/v1/jobs/${quiet}/output?follow=true`, accept);
  const events = (token: string) => LiveResponse.open(a, token, '/v1/events', 'text/event-stream');
  /** A finished job of `user` with 48 MiB of output: far more than the sockets' buffers hold. */
  const finishedBigOutput = async (user: string) => {
    const job = await a.service.start(
      { user, role: 'user' },
      { command: 'head', args: ['-c', String(48 * 1024 * 1024), '/dev/urandom'] },
    );
    await h.engine.waitFor(job.id);
    return job;
  };

  it("cuts a revoked token's follows and event watches, and leaves those of its user's other token and of another user", async () => {
    await a.accounts.addUser({ name: 'alice', role: 'user' });
    const alice = await a.accounts.issueToken({ user: 'alice' });
    const ci = await a.accounts.issueToken({ user: 'alice', label: 'ci' });
    const viewer = await a.issue('vera', 'viewer');
    const admin = await a.issue('root', 'admin');
    const frames = await follow(alice.token);
    const sse = await follow(alice.token, 'text/event-stream');
    const watch = await events(alice.token);
    const others = await follow(viewer);
    const ciFollow = await follow(ci.token);
    for (const live of [frames, sse, watch, others, ciFollow]) assert.equal(live.status, 200);
    await frames.until((l) => l.bytes > 0);
    await others.until((l) => l.bytes > 0);
    await ciFollow.until((l) => l.bytes > 0);
    // Through the API, as an admin does it.
    const revoked = await fetchAs(a, admin, 'DELETE', `/v1/tokens/${alice.record.id}`);
    assert.equal(revoked, 200);
    for (const live of [frames, sse, watch]) {
      await live.until((l) => l.ended !== undefined);
      assert.equal(live.ended, 'cut', 'cut, not ended as if whole');
    }
    assert.equal(others.ended, undefined, "vera's follow goes on");
    assert.equal(ciFollow.ended, undefined, "the follow of alice's other token goes on");
    assert.equal(a.service.streamingUsers, 2);
    for (const live of [others, ciFollow]) {
      live.close();
      await live.until((l) => l.ended !== undefined);
    }
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

  it('refuses a request whose body arrived after its token was revoked: it acts on nothing', async () => {
    const admin = await a.issue('root', 'admin');
    const ops = await a.accounts.issueToken({ user: 'root', label: 'ops' });
    const tokensBefore = (await a.accounts.listTokens('root')).length;
    // The body comes once the route waits for it: authenticated from the head by then.
    const { body, waiting } = heldBackBody();
    const answer = a.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: { authorization: `Bearer ${ops.token}`, 'content-type': 'application/json' },
      payload: body,
    });
    await waiting;
    assert.equal(await fetchAs(a, admin, 'DELETE', `/v1/tokens/${ops.record.id}`), 200);
    body.push(JSON.stringify({ user: 'root', label: 'late' }));
    body.push(null);
    const res = await answer;
    assert.equal(res.statusCode, 401, res.body);
    assert.equal(res.json().error.code, 'UNAUTHENTICATED');
    assert.equal((await a.accounts.listTokens('root')).length, tokensBefore, 'no token was issued');
  });

  it('cuts at once the stream of a client that stopped reading, and gives its place back', async () => {
    await a.accounts.addUser({ name: 'pat', role: 'user' });
    const pat = await a.accounts.issueToken({ user: 'pat' });
    // 48 MiB read as an event stream (base64): far more than the sockets' buffers hold.
    const big = await finishedBigOutput('pat');
    const before = a.service.followers;
    const accepted = once(a.app.server, 'secureConnection') as Promise<[TLSSocket]>;
    const req = httpsRequest(new URL(`/v1/jobs/${big.id}/output`, a.url), {
      ca: a.caPem,
      agent: false,
      headers: { authorization: `Bearer ${pat.token}`, accept: 'text/event-stream' },
    });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    assert.equal(res.statusCode, 200);
    // One piece read, then no more: the server's writes come to wait for room that never comes,
    // and its stream would end only at its next read.
    const [serverSide] = await accepted;
    await once(res, 'data');
    res.pause();
    await untilWritesWait(serverSide);
    assert.equal(a.service.followers, before + 1);
    const closed = once(a.service, 'follower:close');
    await a.accounts.revokeToken(pat.record.id);
    await closed;
    assert.equal(a.service.followers, before);
    req.destroy();
  });

  it('cuts at once the RPC stream of a client that stopped reading, and gives its place back', async () => {
    await a.accounts.addUser({ name: 'quinn', role: 'user' });
    const quinn = await a.accounts.issueToken({ user: 'quinn' });
    const big = await finishedBigOutput('quinn');
    const before = a.service.followers;
    const accepted = once(a.app.server, 'secureConnection') as Promise<[TLSSocket]>;
    const messages = rpcJobs(a, quinn.token)
      .streamOutput({ id: big.id, follow: false })
      [Symbol.asyncIterator]();
    // One message read, then no more: the handler comes to wait for room that never comes.
    assert.equal((await messages.next()).done, false);
    const [serverSide] = await accepted;
    await untilWritesWait(serverSide);
    assert.equal(a.service.followers, before + 1);
    const closed = once(a.service, 'follower:close');
    await a.accounts.revokeToken(quinn.record.id);
    await closed;
    assert.equal(a.service.followers, before);
    await messages.return?.(undefined).catch(() => undefined);
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

describe('a call authorized before its credentials changed, acting after', () => {
  let h: Harness;
  let service: JobService;
  let dir: UserDirectory;
  let authenticator: Authenticator;
  const origin = { source: '127.0.0.1', transport: 'tcp' } as const;
  before(async () => {
    h = await openHarness();
    // As runServer wires them: the service asks the directory whether a caller is stale.
    dir = await UserDirectory.open(h.store.users, {
      onRevoked: (user, tokenId) => service.endStreamsOf(user, tokenId),
    });
    service = new JobService(h.engine, { credentialsStale: (caller) => dir.isStale(caller) });
    authenticator = new Authenticator(dir);
  });
  after(async () => {
    await service.shutdown();
    await h.destroy();
  });
  const isRevoked = (err: unknown) => err instanceof JobworkerError && err.code === 'UNAUTHENTICATED';
  const call = (token: string) => authenticator.authenticateCall(`Bearer ${token}`, () => undefined, origin);

  it('is refused a follow, a read, an event watch and a start once its own token is revoked; its other token is not', async () => {
    await dir.addUser({ name: 'alice', role: 'user' });
    const a = await dir.issueToken({ user: 'alice', label: 'laptop' });
    const b = await dir.issueToken({ user: 'alice', label: 'ci' });
    const viaA = call(a.token);
    const viaB = call(b.token);
    assert.deepEqual([viaA.tokenId, viaA.revision], [a.record.id, 0], 'stamped at authentication');
    const job = await service.start(viaA, { command: 'sleep', args: ['600'] });
    // Authenticated, then its token revoked before it acted: no stream was open to end.
    await dir.revokeToken(a.record.id);
    assert.equal(dir.revision('alice'), 0, "a token's revocation is not a change of its user");
    const listed = async () => (await h.engine.list({ owner: 'alice', limit: 10 })).jobs.length;
    const before = await listed();
    for (const attempt of [
      () => service.openOutput(viaA, job.id, { selector: 'all', cursor: 0, follow: true }),
      () => service.openOutput(viaA, job.id, { selector: 'all', cursor: 0, follow: false }),
      () => service.watchEvents(viaA),
      () => service.start(viaA, { command: 'true' }),
      () => service.stop(viaA, job.id),
    ]) {
      await assert.rejects(attempt(), isRevoked);
    }
    assert.equal(await listed(), before, 'nothing was started');
    assert.deepEqual([service.followers, service.watchers, service.streamingUsers], [0, 0, 0]);
    // The same user's other token goes on, and a wait under way is answered.
    const follow = await service.openOutput(viaB, job.id, { selector: 'all', cursor: 0, follow: true });
    const waiting = service.waitFor(viaB, job.id);
    await service.stop(viaB, job.id);
    assert.equal((await waiting).id, job.id);
    for (;;) if ((await follow.next()).done) break;
  });

  it('is refused once its user is given another role, whichever token it came with', async () => {
    await dir.addUser({ name: 'root', role: 'admin' });
    await dir.addUser({ name: 'bea', role: 'admin' });
    const t = await dir.issueToken({ user: 'bea' });
    const stale = call(t.token);
    const watch = await service.watchEvents(stale);
    const watching = (async () => {
      for (;;) if ((await watch.next()).done) return;
    })();
    await dir.setUser('bea', { role: 'viewer' });
    await assert.rejects(watching, isRevoked, 'the open watch ends');
    assert.equal(dir.revision('bea'), 1);
    await assert.rejects(service.watchEvents(stale), isRevoked, 'a watch opened with the old stamp');
    const fresh = call(t.token);
    assert.equal(fresh.role, 'viewer');
    const again = await service.watchEvents(fresh);
    await again.return(undefined);
  });
});

describe('streams opened with a token that expires', () => {
  let h: Harness;
  let service: JobService;
  let dir: UserDirectory;
  let authenticator: Authenticator;
  const clock = new ManualClock();
  const origin = { source: '127.0.0.1', transport: 'tcp' } as const;
  before(async () => {
    h = await openHarness();
    dir = await UserDirectory.open(h.store.users, {
      clock,
      onRevoked: (user, tokenId) => service.endStreamsOf(user, tokenId),
    });
    service = new JobService(h.engine, { clock, credentialsStale: (caller) => dir.isStale(caller) });
    authenticator = new Authenticator(dir, { clock });
  });
  after(async () => {
    await service.shutdown();
    await h.destroy();
  });
  const call = (token: string) => authenticator.authenticateCall(`Bearer ${token}`, () => undefined, origin);
  const isExpired = (err: unknown) =>
    err instanceof JobworkerError &&
    err.code === 'UNAUTHENTICATED' &&
    /token of user kim .* expired/.test(err.message);
  const drain = async (stream: AsyncGenerator<unknown>) => {
    for (;;) if ((await stream.next()).done) return;
  };

  it('ends its follows and event watches when it expires, not before; those of a token that does not expire go on', async () => {
    await dir.addUser({ name: 'kim', role: 'user' });
    const short = await dir.issueToken({ user: 'kim', lifetimeMs: 60_000 });
    const lasting = await dir.issueToken({ user: 'kim' });
    const viaShort = call(short.token);
    const viaLasting = call(lasting.token);
    assert.equal(viaShort.tokenExpiresAt, clock.now().getTime() + 60_000, 'stamped at authentication');
    assert.equal(viaLasting.tokenExpiresAt, undefined);
    const job = await service.start(viaLasting, { command: 'sleep', args: ['600'] });
    const following = drain(
      await service.openOutput(viaShort, job.id, { selector: 'all', cursor: 0, follow: true }),
    );
    const watching = drain(await service.watchEvents(viaShort));
    const other = await service.watchEvents(viaLasting);
    clock.advance(59_999);
    assert.deepEqual([service.followers, service.watchers], [1, 2], 'not yet');
    clock.advance(1);
    await assert.rejects(following, isExpired);
    await assert.rejects(watching, isExpired);
    assert.deepEqual([service.followers, service.watchers], [0, 1], "the other token's watch goes on");
    // Authenticated before its expiry, acting after it: refused, saying why.
    await assert.rejects(service.watchEvents(viaShort), isExpired);
    await assert.rejects(service.start(viaShort, { command: 'true' }), isExpired);
    assert.equal(dir.isStale(viaShort), true);
    assert.equal(dir.isStale(viaLasting), false);
    await other.return(undefined);
    await service.stop(viaLasting, job.id);
    assert.equal(service.streamingUsers, 0);
  });
});

describe('a token expiring cuts the REST streams it opened', () => {
  let h: Harness;
  let a: AppHarness;
  let quiet: string;
  const clock = new ManualClock();
  before(async () => {
    ({ h, a, quiet } = await openWithQuietJob('lee', clock));
  });
  after(() => closeWithQuietJob(h, a, quiet));

  it('cuts its follow and its event watch at its expiry, as a revocation does', async () => {
    await a.accounts.addUser({ name: 'lee', role: 'user' });
    const lee = await a.accounts.issueToken({ user: 'lee', lifetimeMs: 3_600_000 });
    const frames = await LiveResponse.open(
      a,
      lee.token,
      `/v1/jobs/${quiet}/output?follow=true`,
      OUTPUT_FRAMES_TYPE,
    );
    const watch = await LiveResponse.open(a, lee.token, '/v1/events', 'text/event-stream');
    for (const live of [frames, watch]) assert.equal(live.status, 200);
    await frames.until((l) => l.bytes > 0);
    await watch.until((l) => l.bytes > 0);
    clock.advance(3_600_000);
    for (const live of [frames, watch]) {
      await live.until((l) => l.ended !== undefined);
      assert.equal(live.ended, 'cut', 'cut, not ended as if whole');
    }
    assert.equal(a.service.streamingUsers, 0);
    assert.equal((await LiveResponse.open(a, lee.token, '/v1/events', 'text/event-stream')).status, 401);
  });

  it('refuses a request whose body arrived after its token expired, saying so: it acts on nothing', async () => {
    const lee = await a.accounts.issueToken({ user: 'lee', lifetimeMs: 60_000 });
    const jobsBefore = (await h.engine.list({ owner: 'lee', limit: 100 })).jobs.length;
    // The body comes once the route waits for it: authenticated from the head by then.
    const { body, waiting } = heldBackBody();
    const answer = a.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${lee.token}`, 'content-type': 'application/json' },
      payload: body,
    });
    await waiting;
    clock.advance(60_000);
    body.push(JSON.stringify({ command: 'true' }));
    body.push(null);
    const res = await answer;
    assert.equal(res.statusCode, 401, res.body);
    assert.equal(res.json().error.code, 'UNAUTHENTICATED');
    assert.match(res.json().error.message, /token of this request expired while it arrived/);
    assert.equal(
      (await h.engine.list({ owner: 'lee', limit: 100 })).jobs.length,
      jobsBefore,
      'nothing was started',
    );
  });
});

describe('UserDirectory onRevoked', () => {
  let h: Harness;
  const told: string[] = [];
  let dir: UserDirectory;
  before(async () => {
    h = await openHarness();
    dir = await UserDirectory.open(h.store.users, {
      onRevoked: (user, tokenId) => told.push(tokenId === undefined ? user : `${user} (a token)`),
    });
  });
  after(() => h.destroy());

  it('tells of revocations, disables, role changes, removals and rotations, after they are in force', async () => {
    await dir.addUser({ name: 'root', role: 'admin' });
    await dir.addUser({ name: 'ann', role: 'admin' });
    const t = await dir.issueToken({ user: 'ann', label: 'ci' });
    assert.deepEqual(told, []);
    await dir.issueToken({ user: 'ann', label: 'ci' }, { revokeLabelled: true });
    assert.deepEqual(told.splice(0), ['ann (a token)']);
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
    assert.deepEqual(told.splice(0), ['ann (a token)', 'ann']);
  });

  it('tells, at a reload, of what another node revoked, disabled, removed or removed and added again', async () => {
    const clock = new ManualClock();
    const other = await UserDirectory.open(h.store.users, { clock });
    await other.addUser({ name: 'cy', role: 'user' });
    await other.addUser({ name: 'di', role: 'user' });
    await other.addUser({ name: 'ed', role: 'user' });
    await other.addUser({ name: 'flo', role: 'user' });
    const cy = await other.issueToken({ user: 'cy' });
    await dir.reload();
    assert.deepEqual(told.splice(0), [], 'additions take nothing away');
    await other.revokeToken(cy.record.id);
    await other.setUser('di', { disabled: true });
    await other.removeUser('ed');
    // Between two reloads, with nothing else to tell: another user of the same name.
    await other.removeUser('flo');
    clock.advance(1);
    await other.addUser({ name: 'flo', role: 'user' });
    await dir.reload();
    assert.deepEqual(told.splice(0).sort(), ['cy (a token)', 'di', 'ed', 'flo']);
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

/** A request body sent once the route asks for it (`waiting`): its request is authenticated by then. */
function heldBackBody(): { body: Readable; waiting: Promise<void> } {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { body: new Readable({ read: () => resolve() }), waiting: promise };
}

/** Resolves once the server's side of a connection holds more than it may buffer: its writes wait for room. */
async function untilWritesWait(serverSide: TLSSocket): Promise<void> {
  while (!serverSide.writableNeedDrain) await setImmediate();
}

/**
 * An app over TLS (on `clock`, if given) with a job of `user` that prints once and then stays
 * quiet: its follows wait for good.
 */
async function openWithQuietJob(
  user: string,
  clock?: ManualClock,
): Promise<{ h: Harness; a: AppHarness; quiet: string }> {
  const h = await openHarness();
  const a = await openApp(h, { tls: true, ...(clock ? { clock } : {}) });
  const job = await a.service.start(
    { user, role: 'user' },
    { command: 'sh', args: ['-c', 'echo hello; exec sleep 600'] },
  );
  return { h, a, quiet: job.id };
}

async function closeWithQuietJob(h: Harness, a: AppHarness, quiet: string): Promise<void> {
  await h.engine.stop(quiet, { user: 'root' }).catch(() => undefined);
  await a.close();
  await h.destroy();
}
