import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IMPORTED_TOKENS_FILE, TOKENS_FILE } from '../../src/auth/legacy-token-file.ts';
import { generateToken, hashToken } from '../../src/auth/token.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import type { SqliteUserStore } from '../../src/store/sqlite/sqlite-user-store.ts';
import { openApi } from '../api/api-harness.ts';

const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s));
const user = (name: string, role: 'admin' | 'user' | 'viewer' = 'user') => ({
  name,
  role,
  runAs: null,
  disabled: false,
  createdAt: at(0),
});
const token = (id: string, owner: string, label: string | null = null) => ({
  id,
  user: owner,
  label,
  sha256: hashToken(id),
  createdAt: at(1),
  lastUsedAt: null,
  expiresAt: null,
  revokedAt: null,
});

describe('SqliteUserStore', () => {
  let dir: string;
  let jobs: SqliteJobStore;
  let users: SqliteUserStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-users-'));
    jobs = await SqliteJobStore.open(join(dir, 'jobworker.db'));
    users = jobs.users;
  });
  after(async () => {
    await jobs.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('adds users once, with a first token in the same step, and refuses a taken name', async () => {
    await users.addUser(user('root', 'admin'));
    await users.addUser(user('alice'), token('t-alice', 'alice', 'laptop'));
    await assert.rejects(users.addUser(user('alice'), token('t-dup', 'alice')), { code: 'ALREADY_EXISTS' });
    assert.deepEqual(
      (await users.listTokens()).map((t) => t.id),
      ['t-alice'],
      'the refused add left no token behind',
    );
    assert.deepEqual(
      (await users.listUsers()).map((u) => u.name),
      ['alice', 'root'],
    );
  });

  it('never leaves no enabled admin: disable, demote and remove of the last one are refused', async () => {
    await assert.rejects(users.setUser('root', { disabled: true }), { code: 'LAST_ADMIN' });
    await assert.rejects(users.setUser('root', { role: 'viewer' }), { code: 'LAST_ADMIN' });
    await assert.rejects(users.removeUser('root', at(2)), { code: 'LAST_ADMIN' });
    await users.addUser(user('second', 'admin'));
    assert.equal((await users.setUser('root', { disabled: true })).disabled, true);
    await assert.rejects(users.removeUser('second', at(2)), { code: 'LAST_ADMIN' });
    await users.setUser('root', { disabled: false });
    await assert.rejects(users.setUser('nobody', { disabled: true }), { code: 'NOT_FOUND' });
  });

  it('revokes the tokens of a removed user and keeps their rows; revoke is idempotent', async () => {
    await users.addToken(token('t-alice-2', 'alice'));
    const { revoked } = await users.removeUser('alice', at(5));
    assert.deepEqual(revoked.map((t) => t.id).sort(), ['t-alice', 't-alice-2']);
    const rows = await users.listTokens({ user: 'alice' });
    assert.deepEqual(
      rows.map((t) => t.revokedAt),
      [at(5), at(5)],
    );
    assert.deepEqual((await users.revokeToken('t-alice', at(9))).revokedAt, at(5));
    await assert.rejects(users.revokeToken('t-none', at(9)), { code: 'NOT_FOUND' });
  });

  it('pages the audit trail newest first, filtered by user, action and time', async () => {
    const entry = (s: number, user: string, action: 'job:stop' | 'auth:fail') => ({
      at: at(s),
      user,
      role: 'user',
      source: '10.0.0.1',
      transport: 'tcp',
      action,
      target: null,
      result: 'ok',
    });
    await users.appendAudit([
      entry(1, 'a', 'job:stop'),
      entry(2, 'b', 'job:stop'),
      entry(3, 'a', 'auth:fail'),
    ]);
    await users.appendAudit([entry(4, 'a', 'job:stop')]);
    const first = await users.listAudit({ limit: 2 });
    assert.deepEqual(
      first.entries.map((e) => e.at),
      [at(4), at(3)],
    );
    const second = await users.listAudit({ limit: 2, cursor: first.nextCursor ?? '' });
    assert.deepEqual(
      second.entries.map((e) => e.at),
      [at(2), at(1)],
    );
    assert.equal(second.nextCursor, null);
    const filtered = await users.listAudit({
      limit: 10,
      user: 'a',
      action: 'job:stop',
      since: at(2),
      until: at(5),
    });
    assert.deepEqual(
      filtered.entries.map((e) => e.at),
      [at(4)],
    );
    await assert.rejects(users.listAudit({ limit: 10, cursor: 'x' }), {
      code: 'VALIDATION_FAILED',
      field: 'cursor',
    });
  });
});

describe('upgrading from tokens.json', () => {
  it('imports every token and user once, keeps admin.token working, and renames the file', async () => {
    const admin = generateToken();
    const alice = generateToken();
    let dataDir = '';
    const h = await openApi(async (dir) => {
      dataDir = dir;
      const record = (id: string, user: string, role: string, t: string, purpose: string) => ({
        id,
        user,
        role,
        sha256: hashToken(t),
        createdAt: '2024-05-01T00:00:00.000Z',
        purpose,
      });
      const file = {
        version: 1,
        tokens: [
          record('00000000-0000-4000-8000-000000000001', 'admin', 'admin', admin, 'admin.token'),
          record('00000000-0000-4000-8000-000000000002', 'alice', 'user', alice, 'issued'),
        ],
      };
      await writeFile(join(dir, TOKENS_FILE), JSON.stringify(file), { mode: 0o600 });
      await writeFile(join(dir, 'admin.token'), `${admin}\n`, { mode: 0o600 });
    });
    try {
      assert.equal(h.token, admin, 'admin.token was kept, not replaced');
      await assert.rejects(stat(join(dataDir, TOKENS_FILE)), { code: 'ENOENT' });
      assert.ok(await readFile(join(dataDir, IMPORTED_TOKENS_FILE), 'utf8'));
      const res = await h.json<{ jobs: unknown[] }>('/v1/jobs', {
        headers: { authorization: `Bearer ${alice}` },
      });
      assert.equal(res.status, 200);
      const users = await h.json<{ users: { name: string; role: string }[] }>('/v1/users');
      assert.deepEqual(
        users.body.users.map((u) => [u.name, u.role]),
        [
          ['admin', 'admin'],
          ['alice', 'user'],
        ],
      );
      await h.restart();
      assert.equal((await h.json('/v1/jobs', { headers: { authorization: `Bearer ${alice}` } })).status, 200);
    } finally {
      await h.destroy();
    }
  });
});
