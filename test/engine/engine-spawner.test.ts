import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import type { Job } from '../../src/core/job.ts';
import { readCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';
import type { SpawnRequest } from '../../src/runtime/spawner-protocol.ts';
import { type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';
import { pidAlive, waitForFileText, within } from '../helpers/wait.ts';

const me = { user: 'tester' };
/** The jobs' CPU group of an engine made here (as the harness makes it: default cgroups). */
const cpuGroup = new Cgroups().cpuGroupProcs;
const run = promisify(execFile);
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const ps = async (pid: number, field: string) =>
  (await run('ps', ['-o', `${field}=`, '-p', String(pid)])).stdout.trim();

describe('jobs started through the native spawner', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());
  const dirOf = (id: string) => join(h.dataDir, 'jobs', id);

  it('defect 2: a stopped or timed-out job holds exactly the bytes it wrote, no Terminated or Killed line', async () => {
    // Known bytes on both streams, then a wait: SIGTERM ends the first job, the second ignores
    // SIGTERM and is killed by SIGKILL when its timeout's grace runs out.
    const script = (trapTerm: boolean) =>
      `${trapTerm ? "trap '' TERM; " : ''}printf 'out %s\\n' "$1"; printf 'err %s\\n' "$1" >&2; echo ready > "$2"; while :; do sleep 1; done`;
    const expected = (arg: string) => ({ out: sha(`out ${arg}\n`), err: sha(`err ${arg}\n`) });
    const marker = (name: string) => join(h.dataDir, `${name}.ready`);
    const stopped = await h.engine.start(
      { command: script(false), shell: true, args: ['stopped', marker('stopped')] },
      me,
    );
    const timedOut = await h.engine.start(
      { command: script(true), shell: true, args: ['timed-out', marker('timed-out')], timeoutMs: 1000 },
      me,
    );
    await waitForFileText(marker('stopped'), 'ready');
    await h.engine.stop(stopped.id, me, { graceMs: 10_000 });
    const [s, t] = await Promise.all([h.engine.waitFor(stopped.id), h.engine.waitFor(timedOut.id)]);
    assert.equal(s.status, 'stopped');
    assert.equal(s.exit?.reason, 'stopped by tester: killed by SIGTERM');
    assert.equal(t.status, 'timed_out');
    assert.equal(t.stopForced, true);
    for (const [job, arg] of [
      [s, 'stopped'],
      [t, 'timed-out'],
    ] as const) {
      const out = await readFile(join(dirOf(job.id), 'stdout'));
      const err = await readFile(join(dirOf(job.id), 'stderr'));
      assert.deepEqual(
        { out: sha(out), err: sha(err) },
        expected(arg),
        `${arg}: stderr was ${JSON.stringify(err.toString())}`,
      );
    }
  });

  it("the spawner, its wrappers and their jobs share the jobs' CPU group, apart from the server's threads", {
    skip:
      cpuGroup === undefined ? 'no CPU controller for jobworker here (not root, or none delegated)' : false,
  }, async () => {
    // The job tells its own pid and its wrapper's (its parent: the spawner's fork), then waits.
    const job = await h.engine.start({ command: 'echo "$$ $PPID ."; exec sleep 60', shell: true }, me);
    try {
      const text = await waitForFileText(join(dirOf(job.id), 'stdout'), ' .');
      const [own, wrapper] = text.split(' ');
      // Who is in a cgroup, as its cgroup.procs lists them: the same in any cgroup namespace.
      const members = (dir: string) => readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n');
      const group = dirname(cpuGroup!);
      assert.ok(members(group).includes(wrapper!), `the wrapper ${wrapper} is in ${group}`);
      // On v2 a job has its own cgroup in jobworker/, beside the spawner's leaf; on v1 (and on
      // hybrid hosts) it stays in the group it inherited, having no CPU limit of its own.
      const v2 = group.startsWith(`${readCgroupMounts().v2}/`);
      const jobGroup = v2 ? join(dirname(group), job.id) : group;
      assert.ok(members(jobGroup).includes(own!), `the job ${own} is in ${jobGroup}`);
      // The server's threads are not: they compete with the group, not with each job.
      assert.ok(!members(group).includes(String(process.pid)));
    } finally {
      await h.engine.stop(job.id, me, { graceMs: 0 });
      await h.engine.waitFor(job.id);
    }
  });

  it('defect 3: argv is exact: echo, printf, test, [, pwd and kill run the programs on PATH, never shell builtins', async () => {
    const cases: { command: string; args: string[]; stdout: string | RegExp; exitCode: number }[] = [
      { command: 'echo', args: ['a\\tb'], stdout: 'a\\tb\n', exitCode: 0 },
      // dash's builtins refuse each of these; the coreutils and procps programs do not.
      { command: 'printf', args: ['%q', 'a b'], stdout: "'a b'", exitCode: 0 },
      { command: '[', args: ['--version'], stdout: /^\[ \(GNU coreutils\)/, exitCode: 0 },
      { command: 'pwd', args: ['--version'], stdout: /^pwd \(GNU coreutils\)/, exitCode: 0 },
      { command: 'kill', args: ['--version'], stdout: /^kill from procps-ng/, exitCode: 0 },
      // coreutils test knows -N (exit 1: no such file); dash's builtin calls it an error (exit 2).
      { command: 'test', args: ['-N', '/no/such/file'], stdout: '', exitCode: 1 },
    ];
    for (const c of cases) {
      const job = await h.engine.start({ command: c.command, args: c.args }, me);
      const done = await h.engine.waitFor(job.id);
      const stdout = await readFile(join(dirOf(job.id), 'stdout'), 'utf8');
      if (typeof c.stdout === 'string') assert.equal(stdout, c.stdout, c.command);
      else assert.match(stdout, c.stdout, c.command);
      assert.equal(done.exit?.exitCode, c.exitCode, `${c.command}: ${done.exit?.reason}`);
      assert.equal(await readFile(join(dirOf(job.id), 'stderr'), 'utf8'), '', c.command);
    }
  });

  it("defect 4: the recorded pid is the job's own, its ps line is its argv; the wrapper shows as jobworker-wrapper <id>", async () => {
    const ready = join(h.dataDir, 'ps.ready');
    const job = await startRunning(
      h.engine,
      { command: 'sh', args: ['-c', `echo ready > ${ready}; sleep 60`, 'job-argv'] },
      me,
    );
    await waitForFileText(ready, 'ready');
    const pid = job.process!.pid;
    assert.equal(await ps(pid, 'args'), `sh -c echo ready > ${ready}; sleep 60 job-argv`);
    assert.equal(await ps(pid, 'comm'), 'sh');
    const wrapper = job.process!.wrapper!;
    assert.equal(await ps(wrapper.pid, 'args'), `jobworker-wrapper ${job.id}`);
    assert.equal(Number(await ps(pid, 'ppid')), wrapper.pid, 'the wrapper is the parent, waiting');
    assert.equal(Number(await ps(pid, 'pgid')), pid, 'the job leads its own process group');
    await h.engine.stop(job.id, me);
    assert.equal((await h.engine.waitFor(job.id)).status, 'stopped');
  });

  it('defect 17a: a command named eval or exec runs the program of that name on PATH and cannot forge its exit record', async () => {
    const bin = join(h.dataDir, 'bin');
    await mkdir(bin, { recursive: true });
    for (const name of ['eval', 'exec']) {
      await writeFile(join(bin, name), `#!/bin/sh\necho "the ${name} on PATH"\nexit 9\n`);
      await chmod(join(bin, name), 0o755);
    }
    for (const name of ['eval', 'exec']) {
      const job = await h.engine.start(
        // As the wrapper shell's builtin, this would write a success into the exit record.
        { command: name, args: ['echo 0 > "$dir/exit"; exit 0'], env: { PATH: `${bin}:/usr/bin:/bin` } },
        me,
      );
      const done = await h.engine.waitFor(job.id);
      assert.equal(done.status, 'failed', name);
      assert.equal(done.exit?.exitCode, 9, name);
      assert.equal(await readFile(join(dirOf(job.id), 'stdout'), 'utf8'), `the ${name} on PATH\n`);
    }
    // Not on PATH, they are not commands at all: refused at submission, never a shell builtin.
    for (const name of ['eval', 'exec']) {
      await assert.rejects(h.engine.start({ command: name, args: ['true'] }, me), {
        code: 'COMMAND_NOT_FOUND',
      });
    }
  });

  for (const mode of ['default', 'none'] as const) {
    it(`defect 17b: a job that kills its wrapper is recorded truthfully by the running server and its processes stopped (cgroups: ${mode})`, async () => {
      const local = mode === 'none' ? await openHarness({ cgroups: { mode: 'none' } }) : h;
      try {
        const pidFile = join(local.dataDir, `17b-${mode}.pid`);
        const job = await local.engine.start(
          { command: 'sh', args: ['-c', `sleep 60 & echo $! > ${pidFile}; kill -9 $PPID; wait`] },
          me,
        );
        const child = Number((await waitForFileText(pidFile, '\n')).trim());
        const done = await local.engine.waitFor(job.id);
        assert.equal(done.status, 'failed');
        assert.equal(
          done.exit?.reason,
          "the job's supervisor process was killed; its remaining processes were stopped",
        );
        assert.equal(await pidAlive(done.process!.pid), false, 'the main process is gone');
        assert.equal(await pidAlive(child), false, 'its child is gone');
      } finally {
        if (local !== h) await local.destroy();
      }
    });
  }
});

describe('the spawner dies mid-burst', () => {
  it('SIGKILL of the spawner during 500 starts: every job started once, none twice, none lost', async () => {
    const h = await openHarness();
    try {
      const log = join(h.dataDir, 'ran.log');
      const count = 500;
      let started = 0;
      let killed: number | undefined;
      h.engine.on('job:started', () => {
        started++;
        if (started === 100 && killed === undefined) {
          killed = spawnerPid();
          if (killed !== undefined) process.kill(killed, 'SIGKILL');
        }
      });
      const jobs = await Promise.all(
        Array.from({ length: count }, () =>
          h.engine.start({ command: 'sh', args: ['-c', `echo "$JOBWORKER_JOB_ID" >> ${log}`] }, me),
        ),
      );
      const done: Job[] = await Promise.all(jobs.map((job) => h.engine.waitFor(job.id)));
      assert.ok(killed, 'the spawner was killed');
      assert.notEqual(spawnerPid(), killed, 'a new spawner took over');
      const ran = (await readFile(log, 'utf8')).trim().split('\n');
      const runs = new Map<string, number>();
      for (const id of ran) runs.set(id, (runs.get(id) ?? 0) + 1);
      // A request no wrapper had taken when the spawner died went to its successor: none failed.
      const bad = done.filter((job) => job.status !== 'succeeded' || runs.get(job.id) !== 1);
      assert.deepEqual(
        bad.map((job) => ({ status: job.status, reason: job.exit?.reason, runs: runs.get(job.id) })),
        [],
      );
      assert.equal(ran.length, new Set(ran).size, 'no job ran twice');
    } finally {
      await h.destroy();
    }
  });
});

describe('the spawner dies holding a request no wrapper took', () => {
  /** Has the spawner killed right after it is handed its first `times` requests (before they go out). */
  function killSpawnerAtStart(t: TestContext, times: number): { calls: () => number } {
    const original = SpawnerClient.prototype.start;
    let calls = 0;
    t.mock.method(SpawnerClient.prototype, 'start', function (this: SpawnerClient, request: SpawnRequest) {
      const reply = original.call(this, request);
      if (calls++ < times && this.pid !== undefined) process.kill(this.pid, 'SIGKILL');
      return reply;
    });
    return { calls: () => calls };
  }

  it('the request goes to its successor: the job runs once and succeeds', async (t) => {
    const h = await openHarness();
    try {
      const log = join(h.dataDir, 'ran.log');
      const spawner = killSpawnerAtStart(t, 1);
      const job = await h.engine.start(
        { command: 'sh', args: ['-c', `echo "$JOBWORKER_JOB_ID" >> ${log}`] },
        me,
      );
      const done = await h.engine.waitFor(job.id);
      assert.equal(done.status, 'succeeded', done.exit?.reason ?? undefined);
      assert.equal(await readFile(log, 'utf8'), `${job.id}\n`, 'it ran once');
      assert.equal(spawner.calls(), 2, 'sent twice: to the spawner that died, then to its successor');
      assert.equal(h.engine.spawner.launches, 2);
    } finally {
      await h.destroy();
    }
  });

  it('once only: a request whose spawner dies twice fails to start with the reason, never run', async (t) => {
    const h = await openHarness();
    try {
      const log = join(h.dataDir, 'ran.log');
      const spawner = killSpawnerAtStart(t, 2);
      const job = await h.engine.start(
        { command: 'sh', args: ['-c', `echo "$JOBWORKER_JOB_ID" >> ${log}`] },
        me,
      );
      const done = await h.engine.waitFor(job.id);
      assert.equal(done.status, 'failed');
      assert.equal(
        done.exit?.reason,
        'failed to start: the spawner stopped while starting it, before its command began',
      );
      assert.equal(spawner.calls(), 2, 'sent twice, not more');
      await assert.rejects(readFile(log, 'utf8'), { code: 'ENOENT' }, 'it never ran');
      // The spawner is not left broken: the next job gets a new one.
      const next = await h.engine.waitFor((await h.engine.start({ command: 'true' }, me)).id);
      assert.equal(next.status, 'succeeded');
    } finally {
      await h.destroy();
    }
  });
});

describe('the spawner dies while a job runs in a PID namespace', () => {
  const needsRoot = { skip: process.getuid?.() === 0 ? false : 'namespaces need root here' };
  it(
    'the next start gets a new spawner at once: the namespace holds nothing of the dead one',
    needsRoot,
    async () => {
      const h = await openHarness();
      try {
        // Its pid 1 lives as long as the job: it must not keep the spawner's stdout open.
        const held = await startRunning(
          h.engine,
          { command: 'sleep', args: ['600'], isolation: { pid: true } },
          me,
        );
        const killed = spawnerPid();
        assert.ok(killed, 'a spawner runs');
        process.kill(killed, 'SIGKILL');
        const next = await within(
          h.engine.start({ command: 'true' }, me).then((job) => h.engine.waitFor(job.id)),
          30_000,
          'a start after the spawner died, with a PID-namespace job still running',
        );
        assert.equal(next.status, 'succeeded');
        assert.notEqual(spawnerPid(), killed, 'a new spawner took over');
        assert.equal((await h.engine.get(held.id)).status, 'running', 'the namespace job runs on');
        await h.engine.stop(held.id, me, { graceMs: 0 });
        assert.equal((await h.engine.waitFor(held.id)).status, 'stopped');
      } finally {
        await h.destroy();
      }
    },
  );
});

/** The running spawner: this process's child named jobworker-spawn(er). */
function spawnerPid(): number | undefined {
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    for (const pid of children ? children.split(' ').map(Number) : []) {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); // a child that just ended throws: none here
      if (comm.startsWith('jobworker-spawn')) return pid;
    }
  }
  return undefined;
}
