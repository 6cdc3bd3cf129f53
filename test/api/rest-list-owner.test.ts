import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

describe('GET /v1/jobs?owner=', () => {
  let h: Harness;
  let a: AppHarness;
  const tokens: Record<string, string> = {};

  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    tokens.admin = await a.issue('admin', 'admin');
    tokens.alice = await a.issue('alice', 'user');
    tokens.vera = await a.issue('vera', 'viewer');
    for (const user of ['alice', 'bob', 'alice']) {
      const job = await a.service.start({ user, role: 'user' }, { command: 'true' });
      await h.engine.waitFor(job.id);
    }
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const owners = async (token: string, owner: string) => {
    const res = await a.app.inject({
      url: `/v1/jobs?owner=${owner}`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    return (res.json() as { jobs: { owner: string }[] }).jobs.map((j) => j.owner);
  };

  it("lists one user's jobs for admins and viewers", async () => {
    assert.deepEqual(await owners(tokens.admin!, 'alice'), ['alice', 'alice']);
    assert.deepEqual(await owners(tokens.vera!, 'bob'), ['bob']);
    assert.deepEqual(await owners(tokens.admin!, 'nobody'), []);
  });

  it("gives a user its own jobs, and none for another's name (as if that user had none)", async () => {
    assert.deepEqual(await owners(tokens.alice!, 'alice'), ['alice', 'alice']);
    assert.deepEqual(await owners(tokens.alice!, 'bob'), []);
  });
});
