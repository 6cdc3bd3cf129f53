import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UserDirectory } from '../../src/auth/user-directory.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

/**
 * Authentication looks tokens up by their SHA-256 in an in-memory index kept in step with the
 * store: a revoke, a disable or a removal must be refused on the very next request, an expiry at
 * the instant the clock passes it, and the store reopened must agree.
 */
describe('token lifecycle through the REST API', () => {
  let h: Harness;
  let a: AppHarness;
  let jobId: string;
  const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
  before(async () => {
    h = await openHarness();
    a = await openApp(h, { clock });
    await a.accounts.addUser({ name: 'alice', role: 'user' });
    await a.accounts.addUser({ name: 'bob', role: 'user' });
    await a.accounts.addUser({ name: 'root', role: 'admin' });
    const job = await a.service.start({ user: 'alice', role: 'user' }, { command: 'true' });
    await h.engine.waitFor(job.id);
    jobId = job.id;
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const get = (token: string) =>
    a.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: { authorization: `Bearer ${token}` } });

  it('refuses a revoked token on the next request and keeps the others working', async () => {
    const first = await a.accounts.issueToken({ user: 'alice', label: 'laptop' });
    const other = await a.accounts.issueToken({ user: 'alice', label: 'ci' });
    assert.equal((await get(first.token)).statusCode, 200);
    await a.accounts.revokeToken(first.record.id);
    const refused = await get(first.token);
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.json().error.code, 'UNAUTHENTICATED');
    assert.equal((await get(other.token)).statusCode, 200);
  });

  it('rotates a labelled token: the new one works at once, the one it replaced is refused', async () => {
    const first = await a.accounts.issueToken({ user: 'root', label: 'ops' }, { revokeLabelled: true });
    const second = await a.accounts.issueToken({ user: 'root', label: 'ops' }, { revokeLabelled: true });
    assert.equal((await get(first.token)).statusCode, 401);
    assert.equal((await get(second.token)).statusCode, 200);
    const bob = await a.accounts.issueToken({ user: 'bob' });
    // Bob does not own the job: NOT_FOUND, so the principal is Bob's, not a cached other one.
    assert.equal((await get(bob.token)).statusCode, 404);
  });

  it('refuses an expired token from the instant the clock passes its expiry', async () => {
    const short = await a.accounts.issueToken({ user: 'alice', lifetimeMs: 60_000 });
    assert.equal((await get(short.token)).statusCode, 200);
    clock.advance(59_999);
    assert.equal((await get(short.token)).statusCode, 200);
    clock.advance(1);
    assert.equal((await get(short.token)).statusCode, 401);
  });

  it('refuses a disabled user until it is enabled, and a removed one for good', async () => {
    await a.accounts.addUser({ name: 'carol', role: 'user' });
    const carol = await a.accounts.issueToken({ user: 'carol' });
    assert.equal((await get(carol.token)).statusCode, 404);
    await a.accounts.setUser('carol', { disabled: true });
    assert.equal((await get(carol.token)).statusCode, 401);
    assert.equal(a.accounts.principalOfUser('carol'), undefined);
    await a.accounts.setUser('carol', { disabled: false });
    assert.equal((await get(carol.token)).statusCode, 404);
    await a.accounts.removeUser('carol');
    assert.equal((await get(carol.token)).statusCode, 401);
    await a.accounts.addUser({ name: 'carol', role: 'user' });
    assert.equal((await get(carol.token)).statusCode, 401, 'a new carol does not inherit the old tokens');
  });

  it('writes last use at most once a minute per token, and a reopened index agrees on every token', async () => {
    const t = await a.accounts.issueToken({ user: 'alice', label: 'touch' });
    const revoked = await a.accounts.issueToken({ user: 'alice' });
    await a.accounts.revokeToken(revoked.record.id);
    const lastUsed = async () => {
      await a.accounts.flush();
      return (await h.store.users.listTokens({ user: 'alice' })).find((r) => r.id === t.record.id)
        ?.lastUsedAt;
    };
    await get(t.token);
    const first = await lastUsed();
    assert.deepEqual(first, clock.now());
    clock.advance(30_000);
    await get(t.token);
    assert.deepEqual(await lastUsed(), first, 'not written again within the minute');
    clock.advance(30_000);
    await get(t.token);
    assert.deepEqual(await lastUsed(), clock.now());

    const reopened = await UserDirectory.open(h.store.users, { clock });
    assert.deepEqual(reopened.authenticate(t.token), { user: 'alice', role: 'user', runAs: null });
    assert.equal(reopened.authenticate(revoked.token), undefined);
    assert.equal(reopened.authenticate('jw_unknown'), undefined);
    assert.ok(Object.isFrozen(reopened.authenticate(t.token)), 'principals are immutable');
  });
});
