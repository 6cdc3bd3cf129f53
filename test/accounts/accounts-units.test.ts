import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { accountSlug, ensurePoolHome, poolAccountName } from '../../src/accounts/account-home.ts';
import { chooseAccount, JobAccounts, type ServerIdentity } from '../../src/accounts/job-accounts.ts';
import { parseGroup, parsePasswd, readOsAccounts } from '../../src/accounts/os-accounts.ts';
import { UID_POOL, UidPool } from '../../src/accounts/uid-pool.ts';
import type { Principal } from '../../src/auth/principal.ts';
import type { JobworkerError, ValidationError } from '../../src/core/errors.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'jw-accounts-'));
});
after(() => rm(root, { recursive: true, force: true }));

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  'alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash',
  '# a comment:x:1:1::/:/bin/sh',
  'broken:x:notanumber:1::/:/bin/sh',
  '+nisuser::::::',
  `squatter:x:${UID_POOL.first}:100::/nonexistent:/usr/sbin/nologin`,
  'alice:x:2000:2000:second entry, ignored:/home/other:/bin/sh',
  '',
].join('\n');
const GROUP = [
  'root:x:0:',
  'alice:x:1000:',
  'docker:x:999:alice,bob',
  'audio:x:29:bob',
  `taken:x:${UID_POOL.first + 1}:`,
].join('\n');

async function etcDir(): Promise<string> {
  const etc = await mkdtemp(join(root, 'etc-'));
  await writeFile(join(etc, 'passwd'), PASSWD);
  await writeFile(join(etc, 'group'), GROUP);
  return etc;
}

describe('passwd and group', () => {
  it('reads accounts with their supplementary groups; skips comments, NIS and malformed lines', async () => {
    assert.deepEqual(
      parsePasswd(PASSWD).map((e) => e.name),
      ['root', 'alice', 'squatter', 'alice'],
    );
    assert.deepEqual(parseGroup(GROUP)[2], { gid: 999, members: ['alice', 'bob'] });
    const accounts = await readOsAccounts(await etcDir());
    assert.deepEqual(accounts.byName('alice'), {
      name: 'alice',
      uid: 1000,
      gid: 1000,
      groups: [1000, 999],
      home: '/home/alice',
      shell: '/bin/bash',
    });
    assert.equal(accounts.byName('bob'), undefined, 'a group member without a passwd entry is no account');
    assert.ok(accounts.usedUids.has(UID_POOL.first) && accounts.usedGids.has(UID_POOL.first + 1));
  });
});

describe('the choice of a job account', () => {
  const user: Principal = { user: 'alice', role: 'user' };
  const admin: Principal = { user: 'admin', role: 'admin' };
  const rootServer: ServerIdentity = { root: true, account: 'root', singleAccount: false };
  const plainServer: ServerIdentity = { root: false, account: 'svc', singleAccount: false };

  it('on a root server: the pool by default, a configured run-as, root only for an admin who asks', () => {
    assert.deepEqual(chooseAccount(user, false, rootServer), { kind: 'pool' });
    assert.deepEqual(chooseAccount(admin, false, rootServer), { kind: 'pool' });
    assert.deepEqual(chooseAccount({ ...user, runAs: 'alice' }, false, rootServer), {
      kind: 'named',
      name: 'alice',
    });
    assert.deepEqual(chooseAccount(admin, true, rootServer), { kind: 'named', name: 'root' });
    assert.deepEqual(chooseAccount(admin, false, { ...rootServer, adminRunAs: 'root' }), {
      kind: 'named',
      name: 'root',
    });
    assert.deepEqual(
      chooseAccount(user, false, { ...rootServer, adminRunAs: 'root' }),
      { kind: 'pool' },
      "the admins' default is not a user's",
    );
    assert.throws(
      () => chooseAccount(user, true, rootServer),
      (err: ValidationError) => err.field === 'runAsRoot' && err.code === 'FORBIDDEN',
    );
  });

  it('on a server that is not root: admin jobs as the server, user jobs refused with the fix', () => {
    assert.deepEqual(chooseAccount(admin, false, plainServer), { kind: 'server' });
    assert.deepEqual(
      chooseAccount(admin, false, { ...plainServer, adminRunAs: 'root' }),
      { kind: 'server' },
      '--admin-run-as means nothing to a server that cannot switch',
    );
    assert.throws(
      () => chooseAccount(user, false, plainServer),
      (err: JobworkerError) =>
        err.code === 'ACCOUNT_UNAVAILABLE' &&
        err.message.includes('runs as `svc`, not root') &&
        err.message.includes('Run the server as root, or start it with --single-account') &&
        err.message.includes('every job runs as svc'),
    );
    assert.deepEqual(chooseAccount(user, false, { ...plainServer, singleAccount: true }), { kind: 'server' });
    assert.throws(
      () => chooseAccount(admin, true, plainServer),
      (err: ValidationError) => err.field === 'runAsRoot' && err.code === 'ACCOUNT_UNAVAILABLE',
    );
    assert.throws(
      () => chooseAccount({ ...user, runAs: 'alice' }, false, { ...plainServer, singleAccount: true }),
      (err: JobworkerError) => err.code === 'ACCOUNT_UNAVAILABLE' && /cannot switch/.test(err.message),
    );
  });
});

describe('the uid pool', () => {
  it('skips uids and gids the host names, persists, and gives each user one uid', async () => {
    const dataDir = await mkdtemp(join(root, 'data-'));
    const used = await readOsAccounts(await etcDir());
    const pool = await UidPool.open(dataDir);
    const [a, b, a2] = await Promise.all([
      pool.allocate('alice', used),
      pool.allocate('bob', used),
      pool.allocate('alice', used),
    ]);
    assert.equal(a, UID_POOL.first + 2, 'the first free: one uid is in passwd, the next a gid in group');
    assert.equal(b, UID_POOL.first + 3);
    assert.equal(a2, a);
    const reopened = await UidPool.open(dataDir);
    assert.equal(reopened.uidOf('alice'), a);
    assert.equal(await reopened.allocate('carol', used), UID_POOL.first + 4);
    assert.equal((await stat(join(dataDir, 'accounts.json'))).mode & 0o777, 0o600);
  });

  it('refuses a damaged allocation file with its path', async () => {
    const dataDir = await mkdtemp(join(root, 'data-'));
    await writeFile(join(dataDir, 'accounts.json'), '{"version": 1, "accounts": [{"user": 3}]}');
    await assert.rejects(UidPool.open(dataDir), /accounts\.json: expected each account/);
  });
});

describe('pool homes', () => {
  it('a safe user name is its own home name; others are hashed, never a path', () => {
    assert.equal(accountSlug('alice'), 'alice');
    assert.equal(poolAccountName('alice'), 'jw-alice');
    for (const name of ['..', 'a/b', '.hidden', 'x'.repeat(40), 'élise']) {
      assert.match(accountSlug(name), /^u-[0-9a-f]{16}$/, name);
    }
  });

  it("is made 0700 and the account's; one of another owner is never taken over", async () => {
    const homes = await mkdtemp(join(root, 'homes-'));
    const home = await ensurePoolHome(homes, 'alice', 61999);
    const info = await stat(home);
    assert.deepEqual([info.uid, info.gid, info.mode & 0o777], [61999, 61999, 0o700]);
    assert.equal(await ensurePoolHome(homes, 'alice', 61999), home, 'again: the same home');
    await mkdir(join(homes, 'bob'));
    await assert.rejects(ensurePoolHome(homes, 'bob', 61998), /not a directory owned by uid 61998/);
  });

  it("JobAccounts.checkOnThisHost: a job admitted by another node runs here only as this host's same account", async () => {
    const homesDir = join(root, 'node-b', 'homes');
    // The pool the nodes share (a store's, as on PostgreSQL): node A gave its uids against a host
    // whose passwd and group name none of the pool's.
    const shared = await UidPool.open(await mkdtemp(join(root, 'pool-')));
    const none = { usedUids: new Set<number>(), usedGids: new Set<number>() };
    for (const user of ['al', 'bo', 'cy']) await shared.allocate(user, none);
    const nodeB = await JobAccounts.open({
      dataDir: await mkdtemp(join(root, 'data-')),
      homesDir,
      etc: await etcDir(),
      pool: shared,
    });
    const refused = (account: Parameters<JobAccounts['checkOnThisHost']>[1], pattern: RegExp) =>
      assert.rejects(
        nodeB.checkOnThisHost('al', account),
        (err: JobworkerError) => err.code === 'ACCOUNT_UNAVAILABLE' && pattern.test(err.message),
      );
    const account = { groups: [], home: '/home/x' };
    // A named account: the same ids here, or refused, saying what differs.
    await nodeB.checkOnThisHost('al', { ...account, name: 'alice', uid: 1000, gid: 1000 });
    await refused(
      { ...account, name: 'alice', uid: 1001, gid: 1001 },
      /`alice` \(uid 1001, gid 1001\).*gives uid 1000, gid 1000/,
    );
    await refused({ ...account, name: 'ghost', uid: 1500, gid: 1500 }, /`ghost`.*does not name/);
    // A pool account: the pool's uid for its owner, and one this host gives no account of its own
    // (al's is squatter's in passwd here, bo's a group's).
    for (const [user, uid] of [
      ['al', UID_POOL.first],
      ['bo', UID_POOL.first + 1],
    ] as const) {
      const pooled = { ...account, name: poolAccountName(user), uid, gid: uid };
      await assert.rejects(nodeB.checkOnThisHost(user, pooled), (err: JobworkerError) =>
        new RegExp(`uid ${uid}, which this host`).test(err.message),
      );
    }
    // One the pool gives someone else (a node's own accounts.json of before the shared pool).
    const uid = UID_POOL.first + 2;
    await assert.rejects(
      nodeB.checkOnThisHost('al', { ...account, name: poolAccountName('al'), uid, gid: uid }),
      (err: JobworkerError) =>
        err.code === 'ACCOUNT_UNAVAILABLE' &&
        /with uid 61186, but the pool gives user al uid 61184/.test(err.message),
    );
    // Its own, free here: its home is made here, the account's, as at a first job on this node.
    await nodeB.checkOnThisHost('cy', { ...account, name: poolAccountName('cy'), uid, gid: uid });
    const home = await stat(join(homesDir, 'cy'));
    assert.deepEqual([home.uid, home.mode & 0o777], [uid, 0o700]);
    // The server's own account, or none (a job admitted as it): nothing to check.
    await nodeB.checkOnThisHost('al', null);
  });

  it('JobAccounts: a configured account from passwd; an unknown one, or root for a user, refused', async () => {
    const accounts = await JobAccounts.open({
      dataDir: await mkdtemp(join(root, 'data-')),
      homesDir: join(root, 'made', 'homes'),
      etc: await etcDir(),
    });
    const alice = await accounts.accountFor({ user: 'al', role: 'user', runAs: 'alice' }, false);
    assert.ok(!('make' in alice));
    assert.equal(alice.uid, 1000);
    await assert.rejects(
      accounts.accountFor({ user: 'al', role: 'user', runAs: 'nobody-here' }, false),
      (err: JobworkerError) =>
        err.code === 'ACCOUNT_UNAVAILABLE' &&
        err.message.includes('`nobody-here`') &&
        /\/etc\/passwd/.test(err.message),
    );
    await assert.rejects(
      accounts.accountFor({ user: 'al', role: 'user', runAs: 'root' }, false),
      (err: JobworkerError) =>
        err.code === 'ACCOUNT_UNAVAILABLE' && /only admin jobs may run as root/.test(err.message),
    );
    // A first pool account comes pending: nothing is allocated or made until the engine asks.
    const pending = await accounts.accountFor({ user: 'dave', role: 'user' }, false);
    assert.ok('make' in pending);
    assert.deepEqual([pending.name, pending.home], ['jw-dave', join(root, 'made', 'homes', 'dave')]);
    assert.equal(await accounts.hasPoolAccount('dave'), false);
    await assert.rejects(stat(join(root, 'made', 'homes')), { code: 'ENOENT' });
    const pooled = await pending.make();
    assert.equal(pooled.home, join(root, 'made', 'homes', 'dave'));
    assert.equal((await stat(join(root, 'made', 'homes'))).mode & 0o777, 0o755, 'made on first use');
    const made = await stat(pooled.home);
    assert.deepEqual([made.uid, made.mode & 0o777], [pooled.uid, 0o700]);
    // Given, it is the account itself from then on.
    assert.deepEqual(await accounts.accountFor({ user: 'dave', role: 'user' }, false), pooled);
  });
});
