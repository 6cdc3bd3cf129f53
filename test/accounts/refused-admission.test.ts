import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newJobId } from '../../src/core/ids.ts';
import { type ApiHarness, addUserToken, openApi } from '../api/api-harness.ts';

/**
 * A user's pool account is made for its first job, and kept for good (its name is "used before"
 * once it has one: docs/security.md). A first submission refused at its admission, after its spec
 * passed, must make none either: its queue full, a new queue past `--max-queues`, an unknown
 * `after`. Runs as root, as the server must to make pool accounts.
 */
describe("a new user's first submit refused at its admission", () => {
  let h: ApiHarness;
  before(async () => {
    // Admins use the pool too (no `--admin-run-as`): an admin's `after` is checked at admission only.
    h = await openApi(undefined, { adminRunAs: undefined, maxQueues: '1' });
    for (const [queue, settings] of [
      ['full', { maxWaiting: 0 }],
      ['open', {}],
    ] as const) {
      const put = await h.json(`/v1/queues/${queue}`, { method: 'PUT', body: settings });
      assert.equal(put.status, 200, JSON.stringify(put.body));
    }
  });
  after(() => h?.destroy());

  const allocated = async (user: string) =>
    (
      JSON.parse(await readFile(join(h.dataDir, 'accounts.json'), 'utf8').catch(() => '{"accounts":[]}')) as {
        accounts: { user: string }[];
      }
    ).accounts.some((a) => a.user === user);

  const submit = async (spec: object, token: string) =>
    h.json<{ id: string; error: { code: string; field?: string } }>('/v1/jobs', {
      body: spec,
      headers: { authorization: `Bearer ${token}` },
    });

  it('makes no account and no home, and leaves the name free for a new user', async () => {
    const carol = await addUserToken(h, 'carol');
    const dora = await addUserToken(h, 'dora', 'admin');
    const refusals = [
      {
        who: 'carol',
        token: carol,
        spec: { command: 'true', queue: 'another' },
        status: 400,
        field: 'queue',
      },
      {
        who: 'carol',
        token: carol,
        spec: { command: 'true', queue: 'full' },
        status: 429,
        code: 'QUEUE_FULL',
      },
      {
        who: 'dora',
        token: dora,
        spec: { command: 'true', queue: 'open', after: [newJobId(Date.now())] },
        status: 400,
        field: 'after[0]',
      },
    ];
    for (const { who, token, spec, status, ...error } of refusals) {
      const refused = await submit(spec, token);
      assert.equal(refused.status, status, JSON.stringify(refused.body));
      assert.deepEqual(
        'field' in error ? refused.body.error.field : refused.body.error.code,
        'field' in error ? error.field : error.code,
      );
      assert.equal(await allocated(who), false, `no uid after ${JSON.stringify(spec)}`);
      await assert.rejects(
        stat(join(h.homesDir, who)),
        { code: 'ENOENT' },
        `no home after ${JSON.stringify(spec)}`,
      );
    }
    // Never used: removed, the name is given again without `reuseName`.
    assert.equal((await h.json('/v1/users/carol', { method: 'DELETE' })).status, 200);
    const again = await h.json('/v1/users', { body: { name: 'carol', role: 'user' } });
    assert.equal(again.status, 201, JSON.stringify(again.body));
  });

  it('gives the account to the admitted one of two first submits at once, the other refused', async () => {
    const gus = await addUserToken(h, 'gus');
    const [refused, admitted] = await Promise.all([
      submit({ command: 'true', queue: 'full' }, gus),
      submit({ command: 'id', args: ['-u'], queue: 'open' }, gus),
    ]);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(admitted.status, 201, JSON.stringify(admitted.body));
    const auth = { authorization: `Bearer ${gus}` };
    const uid = await (
      await h.api(`/v1/jobs/${admitted.body.id}/output?stream=stdout&follow=true`, { headers: auth })
    ).text();
    const job = await h.json<{ status: string; account: { uid: number } }>(`/v1/jobs/${admitted.body.id}`, {
      headers: auth,
    });
    assert.equal(job.body.status, 'succeeded');
    assert.equal(uid, `${job.body.account.uid}\n`);
    assert.equal(await allocated('gus'), true);
    assert.equal((await stat(join(h.homesDir, 'gus'))).uid, job.body.account.uid);
  });
});
