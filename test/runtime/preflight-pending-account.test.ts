import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { normalizeSpec } from '../../src/core/spec.ts';
import { jobEnvironment } from '../../src/runtime/job-environment.ts';
import { preflight, unmadeAccount } from '../../src/runtime/preflight.ts';

/**
 * The submit's checks of a user's first job, whose pool account is made only once they pass: its
 * home-to-be is its working directory, made or taken over then (`ensurePoolHome`).
 */
describe('preflight of an account not made yet', {
  skip: process.getuid?.() !== 0 && 'needs root (chown)',
}, () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  const check = (cwd: string, home: string) => {
    const account = unmadeAccount({ name: 'jw-fay', home });
    const spec = { ...normalizeSpec({ command: 'true' }, { cwd }), account };
    preflight(spec, jobEnvironment(spec, 'x'), home);
  };

  it('takes a home left by an earlier data directory, closed to every account but its own', async () => {
    // The homes directory outlives a data directory (one per host): a fresh one's pool gives the
    // same uid again, and its first job ran there until the checks saw the home as a stranger's.
    const homes = await mkdtemp(join(tmpdir(), 'jw-homes-'));
    dirs.push(homes);
    await chmod(homes, 0o711); // as `prepareHomesDir` makes it
    const home = join(homes, 'fay');
    await mkdir(home, { mode: 0o700 });
    await chown(home, 61_999, 61_999);
    check(home, home);
  });

  it('still refuses a home-to-be behind a directory the account may not search, and another cwd there', async () => {
    const homes = await mkdtemp(join(tmpdir(), 'jw-homes-'));
    dirs.push(homes);
    await mkdir(join(homes, 'fay'), { mode: 0o700 });
    // mkdtemp's 0700: closed to every account but root's.
    assert.throws(() => check(join(homes, 'fay'), join(homes, 'fay')), {
      field: 'cwd',
      message: /not searchable/,
    });
    const open = await mkdtemp(join(tmpdir(), 'jw-homes-'));
    dirs.push(open);
    const home = join(open, 'fay');
    await mkdir(home, { mode: 0o700 });
    await chown(home, 61_999, 61_999);
    await chmod(open, 0o711);
    // Only the home itself is the account's own: a directory under it is not reached.
    assert.throws(() => check(join(home, 'sub'), home), { field: 'cwd', message: /not searchable/ });
  });
});
