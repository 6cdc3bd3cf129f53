import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

interface ListJson {
  jobs: { id: string; name: string | null; spec: { queue: string; command: string } }[];
  nextCursor: string | null;
}

describe('GET /v1/jobs?queue=&text=', () => {
  let h: Harness;
  let a: AppHarness;
  let token: string;
  const ids: Record<string, string> = {};

  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    token = await a.issue('alice', 'user');
    const alice = { user: 'alice', role: 'user' } as const;
    const specs = {
      nightly: { command: 'true', args: ['Nightly-Backup', '50%'], queue: 'batch' },
      report: { command: 'true', args: ['report'], name: 'Weekly backup', queue: 'default' },
      other: { command: 'true', args: ['other'], queue: 'batch' },
    };
    for (const [key, spec] of Object.entries(specs)) {
      const job = await a.service.start(alice, spec);
      ids[key] = job.id;
      await h.engine.waitFor(job.id);
    }
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const list = async (query: string) => {
    const res = await a.app.inject({
      url: `/v1/jobs?${query}`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as ListJson;
  };
  const error = async (query: string) => {
    const res = await a.app.inject({
      url: `/v1/jobs?${query}`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 400, res.body);
    return (res.json() as { error: { code: string; field: string; message: string } }).error;
  };

  it('filters by exact queue name, newest first, across pages', async () => {
    assert.deepEqual(
      (await list('queue=batch')).jobs.map((j) => j.id),
      [ids.other, ids.nightly],
    );
    const first = await list('queue=batch&limit=1');
    assert.deepEqual(
      first.jobs.map((j) => j.id),
      [ids.other],
    );
    const second = await list(`queue=batch&limit=1&cursor=${first.nextCursor}`);
    assert.deepEqual(
      second.jobs.map((j) => j.id),
      [ids.nightly],
    );
    assert.deepEqual((await list('queue=Batch')).jobs, []);
  });

  it('filters by text in the name or the command line, ignoring case, wildcards being plain', async () => {
    assert.deepEqual(
      (await list('text=BACKUP')).jobs.map((j) => j.id),
      [ids.report, ids.nightly],
    );
    assert.deepEqual(
      (await list(`text=${encodeURIComponent('true nightly')}`)).jobs.map((j) => j.id),
      [ids.nightly],
    );
    assert.deepEqual(
      (await list(`text=${encodeURIComponent('50%')}`)).jobs.map((j) => j.id),
      [ids.nightly],
    );
    assert.deepEqual((await list(`text=${encodeURIComponent('b_ckup')}`)).jobs, []);
    assert.deepEqual(
      (await list('text=backup&queue=batch')).jobs.map((j) => j.id),
      [ids.nightly],
    );
  });

  it('answers 400 naming `queue` or `text` for a bad value', async () => {
    for (const query of ['text=', `text=${'x'.repeat(201)}`, 'text=a&text=b']) {
      const e = await error(query);
      assert.equal(e.code, 'VALIDATION_FAILED');
      assert.equal(e.field, 'text', query);
    }
    const e = await error('queue=a&queue=b');
    assert.equal(e.field, 'queue');
    assert.equal((await list(`text=${'x'.repeat(200)}`)).jobs.length, 0);
  });
});
