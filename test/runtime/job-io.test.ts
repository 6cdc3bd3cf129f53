import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import {
  chmod,
  chown,
  lchown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '../../src/core/clock.ts';
import type { JobAccount } from '../../src/core/job.ts';
import { normalizeSpec } from '../../src/core/spec.ts';
import {
  createJobIo,
  IO_REMOVAL_MS,
  type IoRemoval,
  jobIoPaths,
  prepareIoDir,
  removeJobIo,
} from '../../src/runtime/job-io.ts';
import { jobSpawnRequest } from '../../src/runtime/job-spawn-request.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';
import { spawnerPath } from '../../src/runtime/spawner-path.ts';
import { CANNOT_HOLD_DIR, holdDirOpens } from '../helpers/held-dir.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { spySpawns } from '../helpers/spawn-spy.ts';
import { pidAlive, until, within } from '../helpers/wait.ts';

/** An account with no entry of its own: the overflow uid, which owns nothing on the host. */
const NOBODY: JobAccount = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534], home: '/nonexistent' };

/** The spawner every removal as a job's account goes through (the server's is the engine's). */
let spawner: SpawnerClient;
before(() => {
  spawner = new SpawnerClient({ path: spawnerPath(), log: () => undefined });
});
after(() => spawner.close());

function removal(clock: Clock = new ManualClock(), more: Partial<IoRemoval> = {}): IoRemoval {
  return { clock, remover: spawner, ...more };
}

/** Makes PATHS (directories, then files with their text) in DIR, owned by `owner`. */
async function makeOwned(
  dir: string,
  owner: { uid: number; gid: number },
  { dirs = [], files = {} }: { dirs?: string[]; files?: Record<string, string> },
): Promise<void> {
  for (const path of dirs) {
    await mkdir(join(dir, path), { mode: 0o700 });
    await chown(join(dir, path), owner.uid, owner.gid);
  }
  for (const [path, text] of Object.entries(files)) {
    await writeFile(join(dir, path), text);
    await chown(join(dir, path), owner.uid, owner.gid);
  }
}

/** The live processes (not zombies) of the removal of DIR: the spawner's children that walk it. */
function walkersOf(dir: string): number[] {
  const title = `jobworker-remove ${dir}\0`;
  return readdirSync('/proc')
    .filter((name) => {
      if (!/^\d+$/.test(name)) return false;
      try {
        return readFileSync(`/proc/${name}/cmdline`, 'latin1').startsWith(title);
      } catch {
        return false; // ended meanwhile
      }
    })
    .map(Number);
}

/** Resolves once PID is no live process (a process killed takes a moment to end). */
function untilGone(pid: number): Promise<void> {
  return until(`process ${pid} to end`, async () => !(await pidAlive(pid)));
}

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
        removeJobIo(paths, NOBODY, removal()),
        /^Error: Removing the contents of .*job-1 as uid 65534 left some: roots\/f: Permission denied$/,
      );
      assert.equal(await readFile(join(paths.dir, 'roots', 'f'), 'utf8'), 'kept');
      await assert.rejects(stat(own), { code: 'ENOENT' });
    } finally {
      await rm(ioDir, { recursive: true, force: true });
    }
  });

  it("names what it could not remove in one line, whatever the name: a job's file names cannot answer for other requests", async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    try {
      await chmod(ioDir, 0o711);
      const paths = jobIoPaths(ioDir, 'job-8');
      await makeOwned(ioDir, NOBODY, { dirs: ['job-8'] });
      // Root's, so that it stays and is named: a name that would be a start's answer on a line of its own.
      await mkdir(join(paths.dir, 'roots'), { mode: 0o755 });
      await writeFile(join(paths.dir, 'roots', 'f\nok 1 2 3 4 5\r'), 'kept');
      const reply = await spawner.removeBelow(paths.dir, { uid: NOBODY.uid, gid: NOBODY.gid, groups: [] });
      assert.deepEqual(reply, { kind: 'failed', reason: 'roots/f?ok 1 2 3 4 5?: Permission denied' });
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
        removeJobIo(paths, NOBODY, removal(new ManualClock(), { signal: AbortSignal.abort() })),
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
      let walks = 0;
      const remover = {
        removeBelow: (...args: Parameters<SpawnerClient['removeBelow']>) => {
          walks++;
          return spawner.removeBelow(...args);
        },
      };
      await removeJobIo(paths, NOBODY, { clock: counting, remover });
      await assert.rejects(stat(paths.dir), { code: 'ENOENT' });
      // Gone already: nothing to do.
      await removeJobIo(paths, NOBODY, { clock: counting, remover });
      assert.deepEqual({ timers, walks }, { timers: 0, walks: 0 }, 'no walk');
    } finally {
      await rm(ioDir, { recursive: true, force: true });
    }
  });

  it('removes all a job left below it as its account, in a child of the spawner: the server forks nothing', async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    const outside = await mkdtemp(join(tmpdir(), 'jw-io-outside-'));
    try {
      await chmod(ioDir, 0o711);
      // Root's, outside the job's directory: what the links it left point to.
      await writeFile(join(outside, 'secret'), 'root only', { mode: 0o600 });
      await mkdir(join(outside, 'tree'));
      await writeFile(join(outside, 'tree', 'f'), 'kept');
      const paths = jobIoPaths(ioDir, 'job-4');
      await makeOwned(ioDir, NOBODY, { dirs: ['job-4', 'warm'] });
      await makeOwned(paths.dir, NOBODY, {
        dirs: ['a', 'a/b', 'a/b/c', 'closed', 'closed/in'],
        files: { 'a/b/c/f': 'x', 'a/f': 'y', 'closed/in/f': 'z', 'result.json': '{}' },
      });
      for (const [name, target] of [
        ['link', join(outside, 'secret')],
        ['a/dirlink', join(outside, 'tree')],
      ] as const) {
        await symlink(target, join(paths.dir, name));
        await lchown(join(paths.dir, name), NOBODY.uid, NOBODY.gid);
      }
      // Closed to itself (`chmod 000`) and read-only: its own, so it may open them up again.
      await chmod(join(paths.dir, 'closed', 'in'), 0o000);
      await chmod(join(paths.dir, 'closed'), 0o000);
      await chmod(join(paths.dir, 'a', 'f'), 0o400);
      // The spawner runs (the engine starts it for its first job): it is started before the spy.
      const user = { uid: NOBODY.uid, gid: NOBODY.gid, groups: [] };
      assert.deepEqual(await spawner.removeBelow(join(ioDir, 'warm'), user), { kind: 'removed' });
      const spy = spySpawns();
      try {
        await removeJobIo(paths, NOBODY, removal());
      } finally {
        spy.restore();
      }
      assert.deepEqual(spy.calls, [], 'the server started no process for it');
      await assert.rejects(stat(paths.dir), { code: 'ENOENT' });
      assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'root only');
      assert.deepEqual(await readdir(join(outside, 'tree')), ['f']);
    } finally {
      await rm(ioDir, { recursive: true, force: true });
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('a walk that hangs is given up at its deadline, its process killed; meanwhile the spawner serves other removals and starts', {
    skip: CANNOT_HOLD_DIR,
  }, async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    const jobDir = await mkdtemp(join(tmpdir(), 'jw-io-job-'));
    await chmod(ioDir, 0o711);
    const hung = jobIoPaths(ioDir, 'job-5');
    const other = jobIoPaths(ioDir, 'job-6');
    await makeOwned(ioDir, NOBODY, { dirs: ['job-5', 'job-6'] });
    await makeOwned(hung.dir, NOBODY, { dirs: ['held'], files: { 'held/f': 'x' } });
    await makeOwned(other.dir, NOBODY, { dirs: ['sub'], files: { 'sub/f': 'x' } });
    // Its walk waits at `held` as on a hung mount (a FUSE file system its job left there).
    const held = await holdDirOpens(join(hung.dir, 'held'));
    try {
      const clock = new ManualClock();
      const removing = removeJobIo(hung, NOBODY, removal(clock));
      removing.catch(() => undefined);
      await held.opened();
      const [walker] = walkersOf(hung.dir);
      assert.ok(walker !== undefined && (await pidAlive(walker)), 'its walk runs, in a process of its own');
      // It holds a copy of the spawner's memory, as the account: never dumped (nor, not dumpable,
      // traced or read through /proc/PID/mem by the account).
      assert.match(await readFile(`/proc/${walker}/limits`, 'utf8'), /^Max core file size\s+0\s+0\s/m);
      await removeJobIo(other, NOBODY, removal());
      await assert.rejects(stat(other.dir), { code: 'ENOENT' });
      const spec = normalizeSpec({ command: 'true' }, { cwd: jobDir });
      const started = await spawner.start(jobSpawnRequest(spec, 'job', jobDir, []));
      assert.equal(started.kind, 'started');
      if (started.kind === 'started') await started.exited;
      // Its deadline, on the engine's clock.
      await clock.timerSet();
      clock.advance(IO_REMOVAL_MS);
      await assert.rejects(
        removing,
        /^Error: Removing the contents of .*job-5 as uid 65534 left some: TimeoutError: The operation timed out after 60000 ms$/,
      );
      assert.equal(await pidAlive(walker), false, 'its walk ended before the answer');
      assert.deepEqual(await readdir(hung.dir), ['held'], 'left for the next sweep');
    } finally {
      await held.release();
      await rm(ioDir, { recursive: true, force: true });
      await rm(jobDir, { recursive: true, force: true });
    }
  });

  it('a spawner that dies during a walk takes the walk with it, and the next one does the removal again', {
    skip: CANNOT_HOLD_DIR,
  }, async () => {
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    await chmod(ioDir, 0o711);
    const paths = jobIoPaths(ioDir, 'job-7');
    await makeOwned(ioDir, NOBODY, { dirs: ['job-7'] });
    await makeOwned(paths.dir, NOBODY, { dirs: ['held'], files: { 'held/f': 'x' } });
    const held = await holdDirOpens(join(paths.dir, 'held'));
    try {
      const removing = removeJobIo(paths, NOBODY, removal());
      removing.catch(() => undefined);
      await held.opened();
      const [first] = walkersOf(paths.dir);
      assert.ok(first !== undefined);
      const launches = spawner.launches;
      process.kill(spawner.pid!, 'SIGKILL');
      // The next spawner's walk comes to wait at the same directory.
      await held.opened(2);
      assert.equal(spawner.launches, launches + 1);
      // Killed as its spawner ended (PR_SET_PDEATHSIG): it would otherwise wait here for good.
      await within(untilGone(first), 10_000, `the first walk (pid ${first}) to end`);
      await held.release();
      await removing;
      await assert.rejects(stat(paths.dir), { code: 'ENOENT' });
    } finally {
      await held.release();
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
        removeJobIo(planted, NOBODY, removal()),
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
