import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { FailedAuthLimiter } from '../../src/auth/failed-auth-limiter.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { type ApiHarness, addUserToken, openApi } from './api-harness.ts';

describe('failed authentications are rate-limited per source address', () => {
  let h: Harness;
  let a: AppHarness;
  let admin: string;
  const clock = new ManualClock();
  before(async () => {
    h = await openHarness();
    a = await openApp(h, { clock, limits: { maxFailures: 3, windowMs: 60_000 } });
    admin = await a.issue('root', 'admin');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const get = (token: string | undefined, remoteAddress = '10.0.0.1') =>
    a.app.inject({
      method: 'GET',
      url: '/v1/jobs',
      remoteAddress,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });

  it('answers 429 RATE_LIMITED with Retry-After to failing attempts once an address failed too often; a good token still passes', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await get(`jw_guess${i}`)).statusCode, 401);
    const limited = await get('jw_guess3');
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().error.code, 'RATE_LIMITED');
    assert.equal(limited.headers['retry-after'], '60');
    // Every local user and job shares one address (loopback): a good credential is never locked
    // out by someone else's failures.
    assert.equal((await get(admin)).statusCode, 200);
    // Other addresses are not affected.
    assert.equal((await get('jw_guess4', '10.0.0.2')).statusCode, 401);

    clock.advance(45_000);
    assert.equal((await get('jw_guess5')).headers['retry-after'], '15');
    clock.advance(15_000);
    assert.equal((await get('jw_guess6')).statusCode, 401, 'the window has passed');
  });

  it("counts an IPv6 peer's whole /64 as one source, and an IPv4-mapped address as its IPv4 address", async () => {
    // A host on IPv6 holds a /64 and may take any address in it: three guesses from three of them
    // use up the /64's attempts.
    for (const [i, address] of ['2001:db8:7:1::1', '2001:db8:7:1:a:b:c:d', '2001:db8:7:1::ffff'].entries()) {
      assert.equal((await get(`jw_v6guess${i}`, address)).statusCode, 401);
    }
    const limited = await get('jw_v6guess3', '2001:db8:7:1:dead:beef:0:1');
    assert.equal(limited.statusCode, 429, 'a fourth address of the same /64 is limited');
    assert.equal(
      (await get('jw_v6guess4', '2001:db8:7:2::1')).statusCode,
      401,
      'the next /64 is another source',
    );
    // A dual-stack socket names an IPv4 peer ::ffff:a.b.c.d: the same peer as a.b.c.d.
    for (let i = 0; i < 3; i++) assert.equal((await get(`jw_v4guess${i}`, '10.0.0.30')).statusCode, 401);
    assert.equal((await get('jw_v4guess3', '::ffff:10.0.0.30')).statusCode, 429);
    // The audit trail keeps each attempt's own address.
    const page = await a.audit.list({ action: 'auth:fail', limit: 100 });
    assert.ok(page.entries.some((e) => e.source === '2001:db8:7:1:a:b:c:d'));
  });

  it('records each failure in the audit trail, with the address and the token id when known', async () => {
    const revoked = await a.accounts.issueToken({ user: 'root', label: 'old' });
    await a.accounts.revokeToken(revoked.record.id);
    assert.equal((await get(revoked.token, '10.0.0.9')).statusCode, 401);
    const page = await a.audit.list({ action: 'auth:fail', limit: 100 });
    const [last] = page.entries;
    assert.equal(last?.source, '10.0.0.9');
    assert.equal(last?.transport, 'tcp');
    assert.equal(last?.user, 'root');
    assert.equal(last?.target, revoked.record.id);
    assert.equal(last?.result, 'UNAUTHENTICATED');
    assert.equal(
      page.entries.filter((e) => e.source === '10.0.0.1').length,
      4,
      'the three failures before the limit and the one after its window; none while limited',
    );
  });

  it('neither counts nor audits a request without credentials: nothing was guessed', async () => {
    const before = (await a.audit.list({ action: 'auth:fail', limit: 100 })).entries.length;
    for (let i = 0; i < 5; i++) {
      const none = await get(undefined, '10.0.0.7');
      assert.equal(none.statusCode, 401, 'never 429, however often');
      assert.match(none.json().error.message, /Missing credentials/);
      // An empty header is no credential either.
      const empty = await a.app.inject({
        method: 'GET',
        url: '/v1/jobs',
        remoteAddress: '10.0.0.7',
        headers: { authorization: '' },
      });
      assert.equal(empty.statusCode, 401, 'never 429, however often');
      assert.match(empty.json().error.message, /Missing credentials/);
    }
    assert.equal((await get('jw_guess', '10.0.0.7')).statusCode, 401, 'a first guess is not limited');
    const after = (await a.audit.list({ action: 'auth:fail', limit: 100 })).entries;
    assert.equal(after.length, before + 1, 'only the guess is in the trail');
  });

  it('keeps at most maxSources addresses in memory, forgetting ended windows first', () => {
    const limiter = new FailedAuthLimiter(clock, { maxFailures: 1, windowMs: 1000, maxSources: 3 });
    for (const source of ['a', 'b', 'c']) limiter.fail(source);
    clock.advance(1000);
    limiter.fail('d');
    assert.equal(limiter.size, 1);
    for (const source of ['e', 'f', 'g', 'h']) limiter.fail(source);
    assert.equal(limiter.size, 3);
    assert.equal(limiter.retryAfter('h'), 1);
    assert.equal(limiter.retryAfter('d'), 0, 'the oldest was forgotten');
  });
});

describe('tokens never reach the log, a URL or an error message', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { logLevel: 'trace', authLimits: { maxFailures: 10_000 } });
  });
  after(() => h.destroy());

  it('greps the whole trace-level log of a busy server for every token it issued', async () => {
    const issued = [h.token];
    for (const name of ['alice', 'bob']) issued.push(await addUserToken(h, name));
    const created = await h.json<{ token: string; id: string }>('/v1/tokens', {
      body: { user: 'alice', label: 'ci', expiresIn: '1h' },
    });
    issued.push(created.body.token);
    const [admin, alice, bob, ci] = issued as [string, string, string, string];
    const as = (token: string) => ({ authorization: `Bearer ${token}` });

    const job = await h.json<{ id: string }>('/v1/jobs', { body: { command: 'true' }, headers: as(alice) });
    assert.equal(job.status, 201);
    await h.json(`/v1/jobs/${job.body.id}`, { headers: as(bob) }); // 404
    await (await h.api(`/v1/jobs/${job.body.id}/output`, { headers: as(ci) })).arrayBuffer();
    await h.json('/v1/users', { body: { name: 'carol', role: 'root' } }); // 400
    await h.json('/v1/tokens', { body: { user: 'nobody' } }); // 404
    await h.json('/v1/tokens', { body: { user: 'alice', expiresIn: ci } }); // 400 naming the field
    await h.json('/v1/tokens', { body: { user: ci } }); // 400: the token as a user name
    await h.json(`/v1/tokens/${created.body.id}`, { method: 'DELETE' });
    for (const token of issued) {
      await h.json('/v1/jobs', { headers: { authorization: `Bearer ${token}x` } }); // 401
      await h.json(`/v1/jobs?token=${token}`); // 401, token in the URL
      await h.json('/v1/jobs', { headers: { authorization: `Basic ${token}` } }); // 401
    }
    await h.json('/v1/jobs', { headers: as(ci) }); // revoked: 401
    const nowhere = await h.json<{ error: { message: string } }>(`/v1/nowhere/${alice}`, {
      headers: as(admin),
    });
    assert.equal(nowhere.body.error.message, 'No route GET /v1/nowhere/jw_[redacted]');
    const echoed = await h.json<{ error: { message: string } }>('/v1/tokens', { body: { user: alice } });
    assert.equal(echoed.body.error.message, 'No user named jw_[redacted]', 'not echoed in an error either');

    await h.server.close();
    const log = h.logs.join('\n');
    assert.ok(h.logs.length > 50, `a trace-level log (${h.logs.length} lines)`);
    assert.match(log, /authentication failed/);
    for (const token of issued) {
      assert.ok(!log.includes(token), 'no token in the log');
      // Nor its secret part, on its own.
      assert.ok(!log.includes(token.slice(3)), 'no token body in the log');
    }
    await h.restart();
  });
});

describe('the audit trail says where a call came from', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi();
  });
  after(() => h.destroy());

  it('records tcp calls with their address and Unix-socket calls as local', async () => {
    assert.equal((await h.json('/v1/queues/q', { method: 'PUT', body: { concurrency: 2 } })).status, 200);
    const socketPath = h.server.socketPath;
    assert.ok(socketPath);
    const status = await new Promise<number>((resolve, reject) => {
      const body = JSON.stringify({ concurrency: 3 });
      const req = request(
        {
          socketPath,
          agent: false,
          path: '/v1/queues/q',
          method: 'PUT',
          // The socket speaks TLS too, verified with the server's CA under the name localhost.
          ca: readFileSync(h.server.caFile!, 'utf8'),
          servername: 'localhost',
          headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(status, 200);
    const { body } = await h.json<{
      entries: { source: string; transport: string; user: string; target: string }[];
    }>('/v1/audit?action=queue:set');
    assert.deepEqual(
      body.entries.map((e) => [e.user, e.target, e.source, e.transport]),
      [
        ['admin', 'q', 'local', 'unix'],
        ['admin', 'q', '127.0.0.1', 'tcp'],
      ],
    );
  });
});
