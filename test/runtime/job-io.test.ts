import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { JobAccount } from '../../src/core/job.ts';
import { jobIoPaths, removeJobIo } from '../../src/runtime/job-io.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

/** An account with no entry of its own: the overflow uid, which owns nothing on the host. */
const NOBODY: JobAccount = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534], home: '/nonexistent' };

describe("a job's io directory, removed by a root server", {
  skip: process.getuid?.() === 0 ? false : 'switching to the job account takes root',
}, () => {
  it("walks it with the job account's rights only: what that account may not remove stays, and is named", async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    try {
      await chmod(ioDir, 0o711);
      const paths = jobIoPaths(ioDir, 'job-1');
      await mkdir(paths.dir, { mode: 0o700 });
      await chown(paths.dir, NOBODY.uid, NOBODY.gid);
      // Its own file, read-only to itself: removed (it may change its own modes).
      const own = join(paths.dir, 'own');
      await writeFile(own, 'x', { mode: 0o400 });
      await chown(own, NOBODY.uid, NOBODY.gid);
      // What only root may remove, in its directory (as a link swapped into the walk would reach
      // /etc): a walk as root removes it, the account's walk cannot.
      await mkdir(join(paths.dir, 'roots'), { mode: 0o755 });
      await writeFile(join(paths.dir, 'roots', 'f'), 'kept');
      await assert.rejects(
        removeJobIo(paths, NOBODY, { clock: new ManualClock(), ms: 60_000 }),
        /^Error: Removing the contents of .*job-1 as uid 65534 left some: find exited 1: .*Permission denied/,
      );
      assert.equal(await readFile(join(paths.dir, 'roots', 'f'), 'utf8'), 'kept');
      await assert.rejects(stat(own), { code: 'ENOENT' });
    } finally {
      await rm(ioDir, { recursive: true, force: true });
    }
  });

  it('removes an empty one, or one with only its result and progress, without a walk', async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    try {
      const paths = jobIoPaths(ioDir, 'job-2');
      await mkdir(paths.dir, { mode: 0o700 });
      await writeFile(paths.result, '{}');
      await writeFile(paths.progress, '{"done": 1}\n');
      await chown(paths.dir, NOBODY.uid, NOBODY.gid);
      await removeJobIo(paths, NOBODY);
      await assert.rejects(stat(paths.dir), { code: 'ENOENT' });
      // Gone already: nothing to do.
      await removeJobIo(paths, NOBODY);
    } finally {
      await rm(ioDir, { recursive: true, force: true });
    }
  });
});
