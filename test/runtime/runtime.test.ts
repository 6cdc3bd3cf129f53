import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { normalizeSpec } from '../../src/core/spec.ts';
import { readCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { type CgroupMode, Cgroups } from '../../src/runtime/cgroups.ts';
import { readExitRecord } from '../../src/runtime/exit-record.ts';
import { freezeProcesses } from '../../src/runtime/freeze-processes.ts';
import { jobEnvironment } from '../../src/runtime/job-environment.ts';
import { jobSpawnRequest } from '../../src/runtime/job-spawn-request.ts';
import { pauseBetweenLooks } from '../../src/runtime/kernel-poll.ts';
import { preflight } from '../../src/runtime/preflight.ts';
import { bootId, identify, isSameProcessAlive, readProcStat } from '../../src/runtime/process-identity.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';
import { spawnerPath } from '../../src/runtime/spawner-path.ts';
import { stopProcesses } from '../../src/runtime/stop-processes.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { pidAlive, waitForFileText, within } from '../helpers/wait.ts';

const HOUR_MS = 3_600_000;

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
let root: string;
let spawner: SpawnerClient;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'jw-runtime-'));
  spawner = new SpawnerClient({ path: spawnerPath(), log: (line) => process.stderr.write(`${line}\n`) });
});
after(async () => {
  spawner.close();
  await rm(root, { recursive: true, force: true });
});

async function launch(cgroups: Cgroups, input: object, through: SpawnerClient = spawner) {
  const dir = await mkdtemp(join(root, 'job-'));
  const spec = normalizeSpec(input, { cwd: dir });
  const id = dir.slice(-6);
  const dirs = await cgroups.create(`t-${process.pid}-${id}`, spec.limits, spec.cwd);
  const reply = await through.start(jobSpawnRequest(spec, id, dir, dirs));
  assert.equal(reply.kind, 'started');
  if (reply.kind !== 'started') throw new Error('not started');
  const identity = {
    pid: reply.jobPid,
    startTicks: reply.jobTicks,
    bootId: bootId(),
    cgroups: dirs,
    wrapper: { pid: reply.wrapperPid, startTicks: reply.wrapperTicks },
  };
  return { dir, spawned: { identity }, exited: reply.exited, dirs };
}

// Every mode this host offers: cgroup v2, v1, and none (process groups only).
const modes: CgroupMode[] = ['none'];
if (new Cgroups({ mode: 'v2', name: 'jobworker-test' }).mode === 'v2') modes.unshift('v2');
if (new Cgroups({ mode: 'v1', name: 'jobworker-test' }).mode === 'v1') modes.push('v1');

for (const mode of modes) {
  describe(`runtime with cgroups: ${mode}`, () => {
    const cgroups = new Cgroups({ mode, name: 'jobworker-test' });

    it('stops a tree that ignores SIGTERM and has a setsid grandchild once the grace has passed on the clock, and says the kill was forced', async () => {
      const pids = join(root, `pids-${mode}`);
      const { spawned, exited, dirs } = await launch(cgroups, {
        command: join(FIXTURES, 'stubborn-tree.sh'),
        args: [pids],
      });
      const [main, grandchild] = (await waitForFileText(pids, '\n')).trim().split(' ').map(Number);
      assert.ok(main && grandchild);
      assert.ok(await pidAlive(grandchild), 'the grandchild runs');
      // A grace of an hour, timed on the clock given: it passes when the clock says so.
      const clock = new ManualClock();
      let settled = false;
      const stopping = stopProcesses(spawned.identity, cgroups, HOUR_MS, true, clock).finally(() => {
        settled = true;
      });
      try {
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(settled, false, 'the stop waits out its grace');
        assert.ok(await pidAlive(main), 'SIGTERM is ignored');
      } finally {
        // Whatever failed above, the stop goes on to its kill: nothing is left running.
        clock.advance(HOUR_MS);
      }
      const result = await within(stopping, 20_000, 'the stop, once its grace had passed');
      await exited;
      if (mode === 'none') {
        // Without cgroups a setsid escapee cannot be found: the documented weaker guarantee.
        assert.equal(await pidAlive(main), false);
        // Left for the test to end (it may have ended by itself meanwhile: ESRCH is no failure).
        try {
          process.kill(grandchild, 'SIGKILL');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
        }
      } else {
        assert.equal(result.forced, true);
        assert.equal(await pidAlive(main), false);
        assert.equal(await pidAlive(grandchild), false, 'the setsid grandchild is gone too');
        assert.ok(cgroups.isEmpty(dirs));
      }
      cgroups.remove(dirs);
    });

    it('a graceful stop is not forced and the wrapper records the signal itself, not 128+N', async () => {
      const { dir, spawned, exited, dirs } = await launch(cgroups, {
        command: 'sh',
        args: ['-c', 'echo ready; exec sleep 60'],
      });
      await waitForFileText(join(dir, 'stdout'), 'ready');
      const result = await stopProcesses(spawned.identity, cgroups, 10_000, true, systemClock);
      await exited;
      assert.equal(result.forced, false);
      const record = await readExitRecord(dir);
      assert.deepEqual(record && { kind: record.kind, signal: 'signal' in record ? record.signal : -1 }, {
        kind: 'signaled',
        signal: 15,
      });
      cgroups.remove(dirs);
    });

    it('records the real exit code, and a missing command', async () => {
      const ok = await launch(cgroups, { command: 'sh', args: ['-c', 'echo out; echo err >&2; exit 3'] });
      await ok.exited;
      const record = await readExitRecord(ok.dir);
      assert.equal(record?.kind === 'exited' && record.code, 3);
      assert.equal(await readFile(join(ok.dir, 'stdout'), 'utf8'), 'out\n');
      assert.equal(await readFile(join(ok.dir, 'stderr'), 'utf8'), 'err\n');
      cgroups.remove(ok.dirs);

      const missing = await launch(cgroups, { command: 'no-such-command-here' });
      await missing.exited;
      const notFound = await readExitRecord(missing.dir);
      assert.deepEqual(notFound?.kind === 'failed' && [notFound.stage, notFound.message], [
        'exec',
        'command not found',
      ]);
      cgroups.remove(missing.dirs);
    });

    it("runs the job's processes in each of its cgroups, and in no v1 freezer where v2 freezes", async () => {
      // Created in its v2 cgroup by clone3 (Linux 5.7), and as on older kernels: forked, then joined.
      const forkOnly = new SpawnerClient({ path: spawnerPath(), log: () => {}, forkOnly: true });
      try {
        await checkMembership(spawner);
        await checkMembership(forkOnly);
      } finally {
        forkOnly.close();
      }
    });

    async function checkMembership(through: SpawnerClient): Promise<void> {
      const job = await launch(
        cgroups,
        {
          command: 'sh',
          args: ['-c', 'cat /proc/self/cgroup; sleep 0.1 & cat /proc/$!/cgroup; wait'],
          limits: { pids: 50 },
        },
        through,
      );
      await job.exited;
      const record = await readExitRecord(job.dir);
      assert.equal(record?.kind === 'exited' && record.code, 0);
      const lines = (await readFile(join(job.dir, 'stdout'), 'utf8')).trim().split('\n');
      const mounts = readCgroupMounts();
      const expected = job.dirs.map((dir) => {
        if (mounts.v2 && dir.startsWith(`${mounts.v2}/`)) return `0::${dir.slice(mounts.v2.length)}`;
        const [hierarchy, mount] = [...mounts.v1].find(([, m]) => dir.startsWith(`${m}/`)) ?? [];
        assert.ok(hierarchy && mount, `${dir} is in a mounted hierarchy`);
        return `:${hierarchy}:${dir.slice(mount.length)}`;
      });
      // The shell (the job's own process, created by clone3 straight into its v2 cgroup where it
      // has one) and a child it forked: each in every cgroup of the job.
      const halves = [lines.slice(0, lines.length / 2), lines.slice(lines.length / 2)];
      for (const half of halves) {
        for (const want of expected) {
          assert.ok(
            half.some((line) => (want.startsWith('0::') ? line === want : line.endsWith(want))),
            `${want} in ${half.join(' | ')}`,
          );
        }
      }
      if (mode === 'v2' && existsSync(join(job.dirs[0]!, 'cgroup.freeze'))) {
        const freezer = mounts.v1.get('freezer');
        assert.ok(!freezer || !job.dirs.some((dir) => dir.startsWith(`${freezer}/`)), 'no v1 freezer cgroup');
      }
      cgroups.remove(job.dirs);
    }

    it('fails the start at its cgroup, naming why, when a cgroup of the job is gone', {
      skip: mode === 'none',
    }, async () => {
      const dir = await mkdtemp(join(root, 'job-'));
      const spec = normalizeSpec({ command: 'true' }, { cwd: dir });
      const dirs = await cgroups.create(`t-${process.pid}-gone-${dir.slice(-6)}`, spec.limits, spec.cwd);
      // Gone before the start: neither created into (clone3) nor joined.
      cgroups.remove(dirs);
      const reply = await spawner.start(jobSpawnRequest(spec, dir.slice(-6), dir, dirs));
      assert.equal(reply.kind, 'started');
      if (reply.kind !== 'started') return;
      await reply.exited;
      const record = await readExitRecord(dir);
      assert.deepEqual(record?.kind === 'failed' && record.stage, 'cgroup');
      assert.match(record?.kind === 'failed' ? record.message : '', /No such file or directory/);
    });

    it('runs a shell script only when asked, with args as positional parameters', async () => {
      const job = await launch(cgroups, { command: 'echo "$1-$2" $HOME_X', args: ['a', 'b c'], shell: true });
      await job.exited;
      assert.equal(await readFile(join(job.dir, 'stdout'), 'utf8'), 'a-b c\n');
      const direct = await launch(cgroups, { command: 'echo', args: ['$HOME', '*'] });
      await direct.exited;
      assert.equal(await readFile(join(direct.dir, 'stdout'), 'utf8'), '$HOME *\n');
      cgroups.remove(job.dirs);
      cgroups.remove(direct.dirs);
    });
  });
}

describe('process identity', () => {
  it('never takes a pid alone for the process it was', async () => {
    const child = spawn('sleep', ['30']);
    const pid = child.pid!;
    const id = identify(pid)!;
    assert.equal(isSameProcessAlive({ pid, ...id }), true);
    assert.equal(
      isSameProcessAlive({ pid, startTicks: id.startTicks - 1, bootId: id.bootId }),
      false,
      'other start time',
    );
    assert.equal(
      isSameProcessAlive({ pid, startTicks: id.startTicks, bootId: 'another-boot' }),
      false,
      'other boot',
    );
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
    assert.equal(isSameProcessAlive({ pid, ...id }), false);
  });

  it('a stop whose recorded pid now belongs to another process signals nothing', async () => {
    const bystander = spawn('sleep', ['30'], { detached: true });
    const pid = bystander.pid!;
    const real = identify(pid)!;
    // Same pid, different start time: what a reused pid looks like.
    const stale = { pid, startTicks: real.startTicks + 7, bootId: real.bootId, cgroups: [] };
    // As after a restart: the group is not known to be ours.
    const result = await stopProcesses(stale, new Cgroups({ mode: 'none' }), 50, false, systemClock);
    assert.equal(await pidAlive(pid), true, 'the unrelated process was not signalled');
    assert.equal(result.forced, false, 'nothing of the job was there to kill');
    bystander.kill('SIGKILL');
  });
});

describe('a job process outside the group it led (started before jobs led their own sessions)', () => {
  /**
   * Resolves once `pid` is in `state` (T: stopped), or, with `not`, out of it; or once it is gone.
   * No notification exists for a stop: the kernel is looked at every 5 ms, as the runtime does.
   */
  async function inState(pid: number, state: string, not = false): Promise<void> {
    for (let stat = readProcStat(pid); stat && (stat.state === state) === not; stat = readProcStat(pid)) {
      await pauseBetweenLooks(5);
    }
  }

  it('is signalled itself as well as its group: a pause stops it, a stop ends it without force', async () => {
    // In the test runner's process group, not one it leads: as a job's process that had moved
    // into its wrapper's group (setpgid), where a signal to its own group (none now) missed it.
    const child = spawn('sleep', ['600']);
    const pid = child.pid!;
    const exited = once(child, 'exit');
    try {
      const identity = { pid, ...identify(pid)!, cgroups: [] };
      const none = new Cgroups({ mode: 'none' });
      assert.notEqual(readProcStat(pid)?.pgid, pid);
      freezeProcesses(identity, none, true);
      await within(inState(pid, 'T'), 10_000, 'the pause of a process outside its group');
      freezeProcesses(identity, none, false);
      await within(inState(pid, 'T', true), 10_000, 'the resume');
      const stopping = stopProcesses(identity, none, HOUR_MS, false, new ManualClock());
      const result = await within(
        stopping,
        10_000,
        'a stop of a process outside its group, before its grace',
      );
      assert.equal(result.forced, false);
      assert.deepEqual(await exited, [null, 'SIGTERM']);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('preflight', () => {
  const check = (input: object) => {
    const spec = normalizeSpec(input, { cwd: '/' });
    preflight(spec, jobEnvironment(spec, 'x'));
  };
  it('refuses a command that cannot be found, naming it', () => {
    assert.throws(() => check({ command: 'no-such-command-here' }), {
      code: 'COMMAND_NOT_FOUND',
      field: 'command',
      message: 'command not found: no-such-command-here',
    });
    assert.throws(() => check({ command: '/etc/passwd' }), { code: 'COMMAND_NOT_FOUND' });
  });
  it('refuses a missing or non-directory cwd', () => {
    assert.throws(() => check({ command: 'true', cwd: '/no/such/dir' }), { field: 'cwd' });
    assert.throws(() => check({ command: 'true', cwd: '/etc/passwd' }), { field: 'cwd' });
  });
  it('finds commands on the job PATH, not the server one', () => {
    check({ command: 'true' });
    assert.throws(() => check({ command: 'true', env: { PATH: '/nonexistent' } }), {
      code: 'COMMAND_NOT_FOUND',
    });
  });
});
