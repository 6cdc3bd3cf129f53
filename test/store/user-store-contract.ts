import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/auth/token.ts';
import type { TokenRecord, UserRecord, UserStore } from '../../src/store/user-store.ts';

/** A user store on a fresh, empty database, and how to close it and throw the database away. */
export interface OpenedUserStore {
  readonly store: UserStore;
  cleanup(): Promise<void>;
}

const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s));

export const user = (name: string, role: 'admin' | 'user' | 'viewer' = 'user'): UserRecord => ({
  name,
  role,
  runAs: null,
  disabled: false,
  createdAt: at(0),
});

export const token = (id: string, owner: string, label: string | null = null, s = 1): TokenRecord => ({
  id,
  user: owner,
  label,
  sha256: hashToken(id),
  createdAt: at(s),
  lastUsedAt: null,
  expiresAt: null,
  revokedAt: null,
});

/** The `UserStore` contract, run against every store (test/store/*-user-store.test.ts). */
export function describeUserStoreContract(name: string, open: () => Promise<OpenedUserStore>): void {
  describe(`${name} (user store contract)`, () => {
    let opened: OpenedUserStore;
    let users: UserStore;
    before(async () => {
      opened = await open();
      users = opened.store;
    });
    after(() => opened.cleanup());

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
      await assert.rejects(users.removeUser('nobody', at(2)), { code: 'NOT_FOUND' });
    });

    it('stores every field a change sets, and keeps the fields it leaves out', async () => {
      const limits = {
        defaults: { memory: 256 * 1024 * 1024 },
        maxima: { memory: 1024 * 1024 * 1024, pids: 50 },
      };
      const isolation = { pid: true, network: 'none' as const };
      const changed = await users.setUser('alice', { runAs: 'alice-os', limits, isolation });
      const stored = (await users.listUsers()).find((u) => u.name === 'alice');
      assert.deepEqual(stored, changed, 'what setUser returns is what is stored');
      assert.deepEqual(stored, { ...user('alice'), runAs: 'alice-os', limits, isolation });
      await users.setUser('alice', { role: 'viewer' });
      const demoted = (await users.listUsers()).find((u) => u.name === 'alice');
      assert.deepEqual(demoted, { ...user('alice'), role: 'viewer', runAs: 'alice-os', limits, isolation });
      await users.setUser('alice', {
        role: 'user',
        runAs: null,
        isolation: null,
        limits: { defaults: {}, maxima: {} },
      });
      assert.deepEqual(
        (await users.listUsers()).find((u) => u.name === 'alice'),
        { ...user('alice'), isolation: null, limits: { defaults: {}, maxima: {} } },
      );
    });

    it('adds a token revoking others in the same step, lists tokens oldest first, records uses', async () => {
      await users.addToken(token('t-alice-0', 'alice', 'old', 0));
      await users.addToken(token('t-alice-2', 'alice', 'new', 2), ['t-alice-0']);
      const listed = await users.listTokens({ user: 'alice' });
      assert.deepEqual(
        listed.map((t) => [t.id, t.revokedAt]),
        [
          ['t-alice-0', at(2)],
          ['t-alice', null],
          ['t-alice-2', null],
        ],
      );
      assert.deepEqual(await users.listTokens({ user: 'nobody' }), []);
      await users.touchTokens([
        { id: 't-alice', at: at(30) },
        { id: 't-alice-2', at: at(31) },
        { id: 't-alice', at: at(32) },
        { id: 't-unknown', at: at(33) },
      ]);
      await users.touchTokens([]);
      const used = new Map((await users.listTokens()).map((t) => [t.id, t.lastUsedAt]));
      assert.deepEqual(used.get('t-alice'), at(32), 'the latest of a batch wins');
      assert.deepEqual(used.get('t-alice-2'), at(31));
      assert.equal(used.get('t-alice-0'), null);
      assert.equal(used.has('t-unknown'), false);
    });

    it('revokes the tokens of a removed user and keeps their rows; revoke is idempotent', async () => {
      const { user: removed, revoked } = await users.removeUser('alice', at(5));
      assert.equal(removed.name, 'alice');
      assert.deepEqual(revoked.map((t) => t.id).sort(), ['t-alice', 't-alice-2']);
      const rows = await users.listTokens({ user: 'alice' });
      assert.deepEqual(
        rows.map((t) => t.revokedAt),
        [at(2), at(5), at(5)],
      );
      assert.deepEqual((await users.revokeToken('t-alice', at(9))).revokedAt, at(5));
      await assert.rejects(users.revokeToken('t-none', at(9)), { code: 'NOT_FOUND' });
      assert.equal(
        (await users.listUsers()).some((u) => u.name === 'alice'),
        false,
      );
    });

    it('adds no token for a user that is not there (removed meanwhile): NOT_FOUND, nothing stored', async () => {
      await assert.rejects(users.addToken(token('t-late', 'alice', null, 6)), { code: 'NOT_FOUND' });
      await assert.rejects(users.addToken(token('t-never', 'nobody', null, 6)), { code: 'NOT_FOUND' });
      const ids = (await users.listTokens()).map((t) => t.id);
      assert.equal(ids.includes('t-late') || ids.includes('t-never'), false, ids.join(' '));
    });

    it('imports users and tokens once: a stored name, id or hash is skipped', async () => {
      const imported = { ...user('imported'), runAs: 'svc' };
      const clash = { ...token('t-other-id', 'imported'), sha256: hashToken('t-alice-2') };
      await users.importUsers([imported, user('root', 'viewer')], [token('t-imported', 'imported'), clash]);
      await users.importUsers([imported], [token('t-imported', 'imported')]);
      const listed = await users.listUsers();
      assert.deepEqual(
        listed.find((u) => u.name === 'imported'),
        {
          ...imported,
          limits: { defaults: {}, maxima: {} },
          isolation: null,
        },
      );
      assert.equal(listed.find((u) => u.name === 'root')?.role, 'admin', 'a stored user is left as it was');
      assert.deepEqual(
        (await users.listTokens({ user: 'imported' })).map((t) => t.id),
        ['t-imported'],
      );
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
      await users.appendAudit([]);
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
      assert.deepEqual(first.entries[0], { ...entry(4, 'a', 'job:stop'), id: first.entries[0]?.id });
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
      await assert.rejects(users.listAudit({ limit: 0 }), { code: 'VALIDATION_FAILED', field: 'limit' });
    });

    it('appends a large batch of audit entries in one call, in order', async () => {
      const many = Array.from({ length: 1234 }, (_, i) => ({
        at: at(100),
        user: 'bulk',
        role: null,
        source: null,
        transport: null,
        action: 'job:submit' as const,
        target: String(i),
        result: 'ok',
      }));
      await users.appendAudit(many);
      const page = await users.listAudit({ limit: 1000, user: 'bulk' });
      assert.equal(page.entries.length, 1000);
      assert.equal(page.entries[0]?.target, '1233', 'the last appended is the newest');
      const rest = await users.listAudit({ limit: 1000, user: 'bulk', cursor: page.nextCursor ?? '' });
      assert.equal(rest.entries.length, 234);
      assert.equal(rest.entries.at(-1)?.target, '0');
    });
  });
}
