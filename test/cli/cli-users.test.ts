import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiAuditEntry, ApiToken, ApiUser } from '../../src/client/api-types.ts';
import { jobworker, startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

const cli = (args: readonly string[], env: NodeJS.ProcessEnv = t.env) => runCliInProcess(args, env);
async function json<T>(args: readonly string[], env: NodeJS.ProcessEnv = t.env): Promise<T> {
  const result = await cli(['--json', ...args], env);
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

describe('jobworker user, token and audit', () => {
  it('refuses a run-as account the server could never use, and adds nothing', async () => {
    const missing = await cli(['user', 'add', 'mallory', '--role', 'user', '--run-as', 'no-such-account']);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /Expected `runAs` to be an account in \/etc\/passwd.*got `no-such-account`/);
    const root = await cli(['user', 'add', 'mallory', '--role', 'user', '--run-as', 'root']);
    assert.match(root.stderr, /Only an admin may run jobs as `root` \(uid 0\); this user's role is user/);
    const users = await json<{ users: ApiUser[] }>(['user', 'list']);
    assert.ok(!users.users.some((u) => u.name === 'mallory'), 'nothing half-created');
  });

  it('adds users, prints a token once, and the token works at once', async () => {
    const added = await cli(['user', 'add', 'alice', '--role', 'user', '--run-as', 'nobody']);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, 'added user alice (user)\n');
    assert.equal((await cli(['user', 'add', 'vera', '--role', 'viewer'])).code, 0);

    const created = await cli(['token', 'create', '--user', 'alice', '--name', 'laptop', '--expires', '30d']);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^jw_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.stdout, `${token}\n`, 'the token alone on stdout');

    const asAlice = { ...t.env, JOBWORKER_TOKEN: token };
    const started = await cli(['start', '--', 'true'], asAlice);
    assert.equal(started.code, 0, started.stderr);

    const users = await json<{ users: ApiUser[] }>(['user', 'list']);
    assert.deepEqual(
      users.users.map((u) => [u.name, u.role, u.runAs, u.disabled]),
      [
        ['admin', 'admin', null, false],
        ['alice', 'user', 'nobody', false],
        ['vera', 'viewer', null, false],
      ],
    );
    const table = await cli(['user', 'list']);
    assert.match(table.stdout, /^NAME +ROLE +RUN-AS +STATE +CREATED\n/);
    assert.match(table.stdout, /\nalice +user +nobody +enabled /);
  });

  it('lists tokens without their secret, with label, last use, expiry and state', async () => {
    const { tokens } = await json<{ tokens: ApiToken[] }>(['token', 'list', '--user', 'alice']);
    assert.equal(tokens.length, 1);
    const [laptop] = tokens;
    assert.equal(laptop?.label, 'laptop');
    assert.equal(laptop?.state, 'active');
    assert.notEqual(laptop?.lastUsedAt, null, 'used by the start above');
    assert.ok(laptop?.expiresAt && Date.parse(laptop.expiresAt) > Date.now() + 29 * 86_400_000);
    assert.ok(!JSON.stringify(tokens).includes('jw_'), 'no secret');
    const table = await cli(['token', 'list']);
    assert.match(table.stdout, /^ID +USER +LABEL +CREATED +LAST-USED +EXPIRES +STATE\n/);
    assert.match(table.stdout, /admin\.token/);
    assert.ok(!table.stdout.includes(t.token));
  });

  it('revokes a token, disables and enables a user: each takes effect on the next request', async () => {
    const token = (await cli(['token', 'create', '--user', 'alice'])).stdout.trim();
    const asAlice = { ...t.env, JOBWORKER_TOKEN: token };
    assert.equal((await cli(['list'], asAlice)).code, 0);

    assert.equal((await cli(['user', 'disable', 'alice'])).stdout, 'disabled user alice\n');
    const refused = await cli(['list'], asAlice);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Invalid token.*UNAUTHENTICATED/);
    assert.equal((await cli(['user', 'enable', 'alice'])).stdout, 'enabled user alice\n');
    assert.equal((await cli(['list'], asAlice)).code, 0);

    const { tokens } = await json<{ tokens: ApiToken[] }>(['token', 'list', '--user', 'alice']);
    const id = tokens.find((x) => x.label === null)?.id ?? '';
    assert.equal((await cli(['token', 'revoke', id])).stdout, `revoked token ${id} of alice\n`);
    assert.equal((await cli(['list'], asAlice)).code, 1);
    const after = await json<{ tokens: ApiToken[] }>(['token', 'list', '--user', 'alice']);
    assert.equal(after.tokens.find((x) => x.id === id)?.state, 'revoked');
  });

  it('refuses bad input naming the field, duplicates, and the last enabled admin', async () => {
    const bad = await cli(['user', 'add', 'no spaces', '--role', 'user']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Expected `name` to be a user name.*VALIDATION_FAILED, field name/);
    const role = await cli(['user', 'add', 'x', '--role', 'root']);
    assert.equal(role.code, 2);
    assert.match(role.stderr, /Expected one of admin, user, viewer, got "root"/);
    const dup = await cli(['user', 'add', 'alice', '--role', 'user']);
    assert.match(dup.stderr, /already exists.*ALREADY_EXISTS/);
    const expires = await cli(['token', 'create', '--user', 'alice', '--expires', 'soon']);
    assert.equal(expires.code, 2);
    const unknown = await cli(['token', 'create', '--user', 'nobody']);
    assert.match(unknown.stderr, /No user named nobody.*NOT_FOUND/);
    for (const args of [
      ['user', 'disable', 'admin'],
      ['user', 'rm', 'admin'],
    ]) {
      const last = await cli(args);
      assert.equal(last.code, 1);
      assert.match(last.stderr, /last enabled admin.*LAST_ADMIN/, args.join(' '));
    }
    const { users } = await json<{ users: ApiUser[] }>(['user', 'list']);
    assert.ok(!users.some((u) => u.name === 'no spaces' || u.name === 'x'), 'nothing half-created');
  });

  it('refuses user and token commands to a non-admin with FORBIDDEN', async () => {
    const token = (await cli(['token', 'create', '--user', 'vera'])).stdout.trim();
    const asVera = { ...t.env, JOBWORKER_TOKEN: token };
    for (const args of [
      ['user', 'list'],
      ['token', 'list'],
      ['user', 'add', 'eve', '--role', 'admin'],
      ['audit'],
    ]) {
      const result = await cli(args, asVera);
      assert.equal(result.code, 1, args.join(' '));
      assert.match(result.stderr, /FORBIDDEN/, args.join(' '));
    }
  });

  it('removes a user: its tokens are revoked, its finished jobs stay', async () => {
    await cli(['user', 'add', 'bob', '--role', 'user']);
    const token = (await cli(['token', 'create', '--user', 'bob'])).stdout.trim();
    const asBob = { ...t.env, JOBWORKER_TOKEN: token };
    const job = JSON.parse((await cli(['--json', 'start', '--', 'true'], asBob)).stdout) as { id: string };
    await jobworker(['logs', '-f', job.id], t.env);
    assert.equal((await cli(['user', 'rm', 'bob'])).stdout, 'removed user bob; its tokens are revoked\n');
    assert.equal((await cli(['list'], asBob)).code, 1);
    const kept = await json<{ owner: string }>(['status', job.id]);
    assert.equal(kept.owner, 'bob');
    const { tokens } = await json<{ tokens: ApiToken[] }>(['token', 'list', '--user', 'bob']);
    assert.deepEqual(
      tokens.map((x) => x.state),
      ['revoked'],
    );
    // A new user of the same name would own bob's jobs: that takes --reuse-name.
    const again = await cli(['user', 'add', 'bob', '--role', 'viewer']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /A user named bob, removed since, left jobs in the history/);
    assert.match(again.stderr, /--reuse-name/);
    const reused = await cli(['user', 'add', 'bob', '--role', 'user', '--reuse-name']);
    assert.equal(reused.code, 0, reused.stderr);
    assert.equal(reused.stdout, 'added user bob (user)\n');
  });

  it('shows the audit trail, filtered by user and action', async () => {
    const { entries } = await json<{ entries: ApiAuditEntry[] }>(['audit', '--limit', '200']);
    const actions = new Set(entries.map((e) => e.action));
    for (const action of [
      'user:add',
      'user:set',
      'user:remove',
      'token:create',
      'token:revoke',
      'job:submit',
      'auth:fail',
    ]) {
      assert.ok(actions.has(action), `${action} in ${[...actions].join(', ')}`);
    }
    const refused = await json<{ entries: ApiAuditEntry[] }>([
      'audit',
      '--action',
      'user:add',
      '--user',
      'vera',
    ]);
    assert.equal(refused.entries[0]?.result, 'FORBIDDEN');
    assert.equal(refused.entries[0]?.transport, 'tcp');
    assert.equal(refused.entries[0]?.source, '127.0.0.1');
    const last = await json<{ entries: ApiAuditEntry[] }>([
      'audit',
      '--action',
      'user:remove',
      '--since',
      '1h',
    ]);
    assert.deepEqual(
      last.entries.map((e) => [e.user, e.target, e.result]),
      [
        ['admin', 'bob', 'ok'],
        ['admin', 'admin', 'LAST_ADMIN'],
      ],
    );
    const table = await cli(['audit', '--user', 'alice', '--limit', '5']);
    assert.match(table.stdout, /^TIME +USER +ACTION +TARGET +RESULT +SOURCE\n/);
    assert.match(table.stdout, /alice +job:submit +[0-9a-f-]{36} +ok +127\.0\.0\.1 \(tcp\)/);
  });
});
