import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { Role } from '../../src/api/rpc/gen/jobworker/v1/user_service_pb.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp, rpcUsers } from '../helpers/rest-app-harness.ts';

/**
 * Jobs belong to a user's name: a new user given the name of one removed would own the removed
 * user's jobs, their output and the name's pool account. That takes saying so (`reuseName`).
 */
describe('the name of a removed user whose jobs are in the history', () => {
  let h: Harness;
  let a: AppHarness;
  let admin: string;
  before(async () => {
    h = await openHarness();
    a = await openApp(h, { tls: true });
    admin = await a.issue('root', 'admin');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const addUser = (body: Record<string, unknown>) =>
    a.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: { authorization: `Bearer ${admin}` },
      payload: body,
    });
  const names = async () => (await a.accounts.listUsers()).map((u) => u.name);

  it('is refused to a new user, naming the field and the way to give the jobs on; nothing is added', async () => {
    await a.accounts.addUser({ name: 'bob', role: 'user' });
    const job = await a.service.start({ user: 'bob', role: 'user' }, { command: 'true' });
    await h.engine.waitFor(job.id);
    await a.accounts.removeUser('bob');
    const refused = await addUser({ name: 'bob', role: 'viewer' });
    assert.equal(refused.statusCode, 400, refused.body);
    const { error } = refused.json();
    assert.equal(error.code, 'VALIDATION_FAILED');
    assert.equal(error.field, 'name');
    assert.match(error.message, /A user named bob, removed since, left jobs in the history/);
    assert.match(error.message, /reuseName: true.*--reuse-name/);
    assert.ok(!(await names()).includes('bob'), 'nothing half-created');
    // A reuseName that is not a boolean is named.
    const bad = await addUser({ name: 'bob', role: 'viewer', reuseName: 'yes' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.field, 'reuseName');
  });

  it('is given with reuseName: true, and the new user owns the jobs', async () => {
    const added = await addUser({ name: 'bob', role: 'user', reuseName: true });
    assert.equal(added.statusCode, 201, added.body);
    const bob = await a.issue('bob', 'user');
    const listed = await a.app.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${bob}` },
    });
    assert.equal(listed.json().jobs.length, 1, "the removed bob's job is the new bob's");
  });

  it('is free when no job of the name is left, or the name never had any', async () => {
    await a.accounts.addUser({ name: 'cleo', role: 'user' });
    await a.accounts.removeUser('cleo');
    assert.equal((await addUser({ name: 'cleo', role: 'user' })).statusCode, 201);
    assert.equal((await addUser({ name: 'dora', role: 'user', reuseName: true })).statusCode, 201);
  });

  it('is answered the same over RPC (INVALID_ARGUMENT; reuse_name gives it)', async () => {
    await a.accounts.addUser({ name: 'eve', role: 'user' });
    const job = await a.service.start({ user: 'eve', role: 'user' }, { command: 'true' });
    await h.engine.waitFor(job.id);
    await a.accounts.removeUser('eve');
    const users = rpcUsers(a, admin);
    await assert.rejects(users.createUser({ name: 'eve', role: Role.USER }), (err: unknown) => {
      const e = ConnectError.from(err);
      assert.equal(e.code, Code.InvalidArgument);
      assert.match(e.rawMessage, /A user named eve, removed since, left jobs in the history/);
      return true;
    });
    const { user } = await users.createUser({ name: 'eve', role: Role.USER, reuseName: true });
    assert.equal(user?.name, 'eve');
  });
});
