import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildRestApp } from '../../src/api/rest/rest-app.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { TokenStore } from '../../src/auth/token-store.ts';
import { JobService } from '../../src/service/job-service.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

/**
 * Authentication looks tokens up by their SHA-256 in an index built from tokens.json: a token
 * that is replaced (revoked) must be refused on the very next request, not after some expiry.
 */
describe('token revocation through the REST API', () => {
  let h: Harness;
  let dir: string;
  let tokens: TokenStore;
  let app: FastifyInstance;
  let jobId: string;
  before(async () => {
    h = await openHarness();
    dir = await mkdtemp(join(tmpdir(), 'jw-tokens-'));
    tokens = await TokenStore.open(dir);
    const service = new JobService(h.engine);
    app = await buildRestApp({
      service,
      authenticator: new Authenticator(tokens),
      logger: pino({ level: 'silent' }),
      version: 'test',
    });
    const job = await service.start({ user: 'alice', role: 'user' }, { command: 'true' });
    await h.engine.waitFor(job.id);
    jobId = job.id;
  });
  after(async () => {
    await app.close();
    await h.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (token: string) =>
    app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: { authorization: `Bearer ${token}` } });

  it('refuses a replaced token on the next request and accepts its successor at once', async () => {
    const first = await tokens.replace('alice', 'user', 'laptop');
    assert.equal((await get(first.token)).statusCode, 200);
    assert.equal((await get(first.token)).statusCode, 200, 'still good when asked again');

    const second = await tokens.replace('alice', 'user', 'laptop');
    const refused = await get(first.token);
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.json().error.code, 'UNAUTHENTICATED');
    assert.equal((await get(second.token)).statusCode, 200);
  });

  it('keeps other tokens working when one is revoked, and never takes a token for another', async () => {
    const bob = await tokens.issue('bob', 'user');
    const admin = await tokens.replace('root', 'admin', 'ops');
    // Bob does not own the job: NOT_FOUND, so the principal is Bob's, not a cached other one.
    assert.equal((await get(bob.token)).statusCode, 404);
    assert.equal((await get(admin.token)).statusCode, 200);

    await tokens.replace('root', 'admin', 'ops');
    assert.equal((await get(admin.token)).statusCode, 401);
    assert.equal((await get(bob.token)).statusCode, 404, "Bob's token is untouched");
  });

  it('refuses a token the store reopened from tokens.json does not hold', async () => {
    const kept = await tokens.issue('alice', 'user');
    const revoked = await tokens.replace('alice', 'user', 'ci');
    await tokens.replace('alice', 'user', 'ci');
    const reopened = await TokenStore.open(dir);
    assert.deepEqual(reopened.authenticate(kept.token), { user: 'alice', role: 'user' });
    assert.equal(reopened.authenticate(revoked.token), undefined);
    assert.equal(reopened.authenticate('jw_unknown'), undefined);
  });
});
