import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { JobAccount } from '../../src/core/job.ts';
import { createJobIo, jobIoPaths, prepareIoDir, removeJobIo } from '../../src/runtime/job-io.ts';
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
        removeJobIo(paths, NOBODY, new ManualClock()),
        /^Error: Removing the contents of .*job-1 as uid 65534 left some: find exited 1: .*Permission denied/,
      );
      assert.equal(await readFile(join(paths.dir, 'roots', 'f'), 'utf8'), 'kept');
      await assert.rejects(stat(own), { code: 'ENOENT' });
    } finally {
      await rm(ioDir, { recursive: true, force: true });
    }
  });

  it('ends its walk at once when told to stop (the engine closes), and leaves the directory for the next sweep', async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    try {
      await chmod(ioDir, 0o711);
      const paths = jobIoPaths(ioDir, 'job-3');
      await mkdir(join(paths.dir, 'sub'), { recursive: true, mode: 0o700 });
      for (const path of [paths.dir, join(paths.dir, 'sub')]) await chown(path, NOBODY.uid, NOBODY.gid);
      await assert.rejects(
        removeJobIo(paths, NOBODY, new ManualClock(), undefined, AbortSignal.abort()),
        /^Error: Removing the contents of .*job-3 as uid 65534 left some: AbortError/,
      );
      assert.ok((await stat(join(paths.dir, 'sub'))).isDirectory(), 'the walk never ran');
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
      // The walk as the account sets its deadline first: a clock that counts its timers tells.
      const clock = new ManualClock();
      let timers = 0;
      const counting = {
        ...clock,
        now: () => clock.now(),
        setTimer: (fn: () => void, ms: number) => {
          timers++;
          return clock.setTimer(fn, ms);
        },
      };
      await removeJobIo(paths, NOBODY, counting);
      await assert.rejects(stat(paths.dir), { code: 'ENOENT' });
      // Gone already: nothing to do.
      await removeJobIo(paths, NOBODY, counting);
      assert.equal(timers, 0, 'no walk');
    } finally {
      await rm(ioDir, { recursive: true, force: true });
    }
  });
});

describe("the directory of the jobs' io directories", {
  skip: process.getuid?.() === 0 ? false : 'making a directory of another account takes root',
}, () => {
  it('one the operator named keeps its mode: refused, saying what it needs, when it would not let jobs through; the default is opened', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-ioroot-'));
    try {
      // A directory of root's own, closed to others (as /root is): opening it would expose it.
      const named = join(parent, 'private');
      await mkdir(named, { mode: 0o700 });
      await chmod(named, 0o700);
      await assert.rejects(prepareIoDir(named), /must let other accounts through .*chmod 711/);
      assert.equal((await stat(named)).mode & 0o7777, 0o700, 'its mode is as it was');
      // The same as the default (jobworker's by its name, narrowed at an earlier start: made under
      // umask 077 and killed before its chmod): used, opened to pass through as when it is made.
      assert.deepEqual(await prepareIoDir(named, { elsewhere: true }), { dir: named });
      assert.equal((await stat(named)).mode & 0o7777, 0o711);
      // One made beside a default that was taken, narrowed since: used again, opened again.
      const beside = join(parent, 'taken-abc123');
      await mkdir(beside, { mode: 0o700 });
      await chmod(beside, 0o700);
      await writeFile(join(parent, 'taken'), 'not a directory');
      assert.equal((await prepareIoDir(join(parent, 'taken'), { elsewhere: true })).dir, beside);
      assert.equal((await stat(beside)).mode & 0o7777, 0o711);
      // One jobworker makes (missing, as at a first start) is made open to pass through.
      const fresh = join(parent, 'fresh', 'io');
      assert.equal((await prepareIoDir(fresh)).dir, fresh);
      assert.equal((await stat(fresh)).mode & 0o7777, 0o711);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('taken first by another account: a fresh one beside it, or a refusal where the operator named it', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-ioroot-'));
    try {
      await chmod(parent, 0o1777);
      // Another local account makes the default name before the server starts.
      const taken = join(parent, 'jobworker-io-0123456789abcdef');
      await mkdir(taken, { mode: 0o777 });
      await chown(taken, NOBODY.uid, NOBODY.gid);
      await assert.rejects(
        prepareIoDir(taken),
        /must be a directory owned by this server's account \(uid 0\)/,
      );
      const moved = await prepareIoDir(taken, { elsewhere: true });
      assert.match(moved.notUsed ?? '', /must be a directory owned by this server's account/);
      assert.ok(moved.dir.startsWith(`${taken}-`), moved.dir);
      const made = await stat(moved.dir);
      assert.deepEqual([made.uid, made.mode & 0o7777], [0, 0o711]);
      // At the next start, the same one: jobs adopted then find their paths.
      assert.equal((await prepareIoDir(taken, { elsewhere: true })).dir, moved.dir);
      // One another account made under that pattern is passed over.
      await rm(moved.dir, { recursive: true });
      const planted = `${taken}-aaaaaa`;
      await mkdir(planted, { mode: 0o777 });
      await chown(planted, NOBODY.uid, NOBODY.gid);
      const again = await prepareIoDir(taken, { elsewhere: true });
      assert.notEqual(again.dir, planted);
      assert.equal((await stat(again.dir)).uid, 0);
      // Nor a file planted under the name, or a link.
      const file = join(parent, 'file-io');
      await writeFile(file, 'planted');
      assert.ok((await prepareIoDir(file, { elsewhere: true })).dir.startsWith(`${file}-`));
      const link = join(parent, 'link-io');
      await symlink(parent, link);
      assert.ok((await prepareIoDir(link, { elsewhere: true })).dir.startsWith(`${link}-`));
      // Its own, as it is: used.
      const own = join(parent, 'own');
      assert.deepEqual(await prepareIoDir(own, { elsewhere: true }), { dir: own });
      assert.equal((await stat(own)).mode & 0o7777, 0o711);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('removed while the server runs (a cleaner of the temp directory): made again at the next start of a job, unless taken', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-ioroot-'));
    try {
      await chmod(parent, 0o1777);
      const { dir } = await prepareIoDir(join(parent, 'jobworker-io-x'));
      await rm(dir, { recursive: true });
      const first = jobIoPaths(dir, 'job-1');
      await createJobIo(first, NOBODY);
      const [made, job] = await Promise.all([stat(dir), stat(first.dir)]);
      assert.deepEqual([made.uid, made.mode & 0o7777], [0, 0o711], 'made again as at the start');
      assert.deepEqual([job.uid, job.mode & 0o7777], [NOBODY.uid, 0o700]);
      // Removed again, and another account makes the name first: the start fails, saying why.
      await rm(dir, { recursive: true });
      await mkdir(dir, { mode: 0o777 });
      await chown(dir, NOBODY.uid, NOBODY.gid);
      // Nothing is removed as root through it either: its owner could swap a job's directory in
      // it for a link (to someone's project, say) between two steps of the removal.
      const planted = jobIoPaths(dir, 'job-1');
      await mkdir(planted.dir);
      await writeFile(planted.result, "not the server's to remove");
      await assert.rejects(
        removeJobIo(planted, NOBODY, new ManualClock()),
        /job-1 is left: the directory it is in is not this server's any more/,
      );
      assert.equal(await readFile(planted.result, 'utf8'), "not the server's to remove");
      await assert.rejects(
        createJobIo(jobIoPaths(dir, 'job-2'), NOBODY),
        /must be a directory owned by this server's account \(uid 0\) that no one else may write \(it was removed or replaced while the server ran\)/,
      );
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
