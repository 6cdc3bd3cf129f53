import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IMPORTED_TOKENS_FILE, importLegacyTokens, TOKENS_FILE } from '../../src/auth/legacy-token-file.ts';
import { TOKENLESS_USER } from '../../src/auth/principal.ts';
import { generateToken, hashToken } from '../../src/auth/token.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { openApi } from '../api/api-harness.ts';
import { describeUserStoreContract } from './user-store-contract.ts';

describeUserStoreContract('SqliteUserStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-users-'));
  const jobs = await SqliteJobStore.open(join(dir, 'jobworker.db'));
  return {
    store: jobs.users,
    async cleanup() {
      await jobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
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

  it('refuses a token of the name kept for tokenless /run, which would act as every tokenless caller', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-legacy-'));
    const jobs = await SqliteJobStore.open(join(dir, 'jobworker.db'));
    try {
      const file = {
        version: 1,
        tokens: [
          {
            id: '00000000-0000-4000-8000-000000000003',
            user: TOKENLESS_USER,
            role: 'user',
            sha256: hashToken(generateToken()),
            createdAt: '2024-05-01T00:00:00.000Z',
            purpose: 'issued',
          },
        ],
      };
      await writeFile(join(dir, TOKENS_FILE), JSON.stringify(file), { mode: 0o600 });
      await assert.rejects(
        importLegacyTokens(dir, jobs.users),
        /_run-without-token", a name jobworker keeps for tokenless POST \/run/,
      );
      assert.deepEqual(await jobs.users.listUsers(), []);
    } finally {
      await jobs.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
