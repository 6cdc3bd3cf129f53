import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JobAccounts } from '../../src/accounts/job-accounts.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

describe("a node of a cluster checks a job's account on its own host before it runs it", {
  skip: process.getuid?.() === 0 ? false : 'switching accounts takes a root server',
}, () => {
  let root: string;
  let h: Harness;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'jw-account-check-'));
    const etc = join(root, 'etc');
    await mkdir(etc);
    // This host's passwd: `deploy` has other ids than on the node that admitted the job.
    await writeFile(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\ndeploy:x:1700:1700::/tmp:/bin/sh\n');
    await writeFile(join(etc, 'group'), 'root:x:0:\n');
    const accounts = await JobAccounts.open({
      dataDir: join(root, 'data'),
      homesDir: join(root, 'homes'),
      etc,
    });
    h = await openHarness({ checkAccount: (job) => accounts.checkOnThisHost(job.owner, job.spec.account) });
  });
  after(async () => {
    await h?.destroy();
    await rm(root, { recursive: true, force: true });
  });

  it('fails the start of one whose account differs here, saying how, before anything is made or run', async () => {
    const marker = join(root, 'ran');
    const account = { name: 'deploy', uid: 1600, gid: 1600, groups: [1600], home: '/tmp' };
    const job = await h.engine.start(
      { command: 'touch', args: [marker], cwd: '/tmp' },
      { user: 'al', account },
    );
    const done = await h.engine.waitFor(job.id, AbortSignal.timeout(30_000));
    assert.equal(done.status, 'failed');
    assert.match(
      done.exit?.reason ?? '',
      /^failed to start: The job runs as `deploy` \(uid 1600, gid 1600\), which this host's passwd gives uid 1700, gid 1700/,
    );
    assert.equal(existsSync(marker), false, 'it never ran');
    assert.equal(existsSync(join(h.dataDir, 'jobs', job.id)), false, 'nothing made for it');
    // One whose account is this host's runs.
    const same = { ...account, uid: 1700, gid: 1700, groups: [1700] };
    const ok = await h.engine.start({ command: 'true', cwd: '/tmp' }, { user: 'al', account: same });
    assert.equal((await h.engine.waitFor(ok.id, AbortSignal.timeout(30_000))).status, 'succeeded');
  });
});
