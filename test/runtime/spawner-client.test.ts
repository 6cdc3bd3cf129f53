import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { constants, readdirSync, readFileSync } from 'node:fs';
import {
  chmod,
  chown,
  type FileHandle,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { normalizeSpec } from '../../src/core/spec.ts';
import { readExitRecord } from '../../src/runtime/exit-record.ts';
import { jobSpawnRequest } from '../../src/runtime/job-spawn-request.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';
import { spawnerPath } from '../../src/runtime/spawner-path.ts';
import { CANNOT_HOLD_EXEC, holdExec, untilNoWrapperProcesses } from '../helpers/held-exec.ts';
import { makeFifo } from '../helpers/small-disk.ts';
import { pidAlive, within } from '../helpers/wait.ts';

const run = promisify(execFile);
let root: string;
let spawner: SpawnerClient;
/** Forks each job's process, as on kernels before 5.7 and for jobs with namespaces. */
let forking: SpawnerClient;
const logged: string[] = [];
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'jw-spawner-'));
  spawner = new SpawnerClient({ path: spawnerPath(), log: (line) => logged.push(line) });
  forking = new SpawnerClient({ path: spawnerPath(), log: (line) => logged.push(line), forkOnly: true });
});
after(async () => {
  spawner.close();
  forking.close();
  await rm(root, { recursive: true, force: true });
});

async function start(input: object, through = spawner) {
  const dir = await mkdtemp(join(root, 'job-'));
  const spec = normalizeSpec(input, { cwd: dir });
  const reply = await through.start(jobSpawnRequest(spec, 'job', dir, []));
  if (reply.kind === 'started') await reply.exited;
  return { dir, reply, record: await readExitRecord(dir) };
}

/**
 * The two ways the wrapper creates a job's process: by default sharing its memory until the exec
 * (clone3 with CLONE_VM | CLONE_VFORK, x86-64), the job's process then writing its identity file
 * itself; and forked, the wrapper writing it and then saying go. Each test runs through both.
 */
const WAYS = [
  {
    way: "created sharing the wrapper's memory (the default)",
    client: () => spawner,
    writer: 'job',
    skip: sharingHere() ? false : 'the spawner forks here (not x86-64, or clone3 may be filtered)',
  },
  { way: 'forked', client: () => forking, writer: 'wrapper', skip: false },
] as const;

/**
 * Whether the spawner can make a job's process sharing the wrapper's memory here: on x86-64, and
 * with no seccomp filter on this process (container runtimes' default filters answer ENOSYS to
 * clone3, and the spawner then forks).
 */
function sharingHere(): boolean {
  return process.arch === 'x64' && /^Seccomp:\s+0$/m.test(readFileSync('/proc/self/status', 'utf8'));
}

/** The look for a blocked open reads x86-64 system call numbers. */
const CANNOT_LOOK =
  process.arch === 'x64' ? false : 'finding a blocked open reads x86-64 system call numbers';

/**
 * The pid of the process blocked opening PATH: /proc/PID/syscall names openat (257 on x86-64)
 * and where the path is in its memory, which /proc/PID/mem reads. Looked for until found.
 */
async function blockedOpener(path: string, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const name of await readdir('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const call = (await readFile(`/proc/${name}/syscall`, 'utf8').catch(() => '')).split(' ');
      if (call[0] !== '257' || !call[2]) continue;
      const mem = await open(`/proc/${name}/mem`, 'r').catch(() => undefined);
      if (!mem) continue;
      try {
        const buf = Buffer.alloc(path.length + 1);
        await mem.read(buf, 0, buf.length, Number(BigInt(call[2])));
        if (buf.toString('latin1') === `${path}\0`) return Number(name);
      } catch {
        // Gone, or moved on: look again.
      } finally {
        await mem.close();
      }
    }
    // The writer gets to its open in its own time: look again shortly.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no process blocked opening ${path}`);
}

/**
 * Starts INPUT with a FIFO where its identity file's temporary name goes: whoever writes the
 * identity blocks in its open until the FIFO is released (`releaseFifo`). JOB_ID: the job's id,
 * which its wrapper's title names.
 */
async function startBlockedOnIdentity(through: SpawnerClient, input: object, jobId = 'job') {
  const dir = await mkdtemp(join(root, 'job-'));
  const tmp = join(dir, 'process.tmp');
  await makeFifo(tmp);
  const spec = normalizeSpec(input, { cwd: dir });
  return { dir, tmp, started: through.start(jobSpawnRequest(spec, jobId, dir, [])) };
}

/** The parent's pid of PID, from /proc/PID/stat. */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The one child of PID, found by the parent pid in every process's /proc/PID/stat. */
function onlyChildOf(pid: number): number {
  const children = readdirSync('/proc').filter((name) => {
    if (!/^\d+$/.test(name)) return false;
    try {
      return parentOf(Number(name)) === pid;
    } catch {
      return false; // ended meanwhile
    }
  });
  assert.equal(children.length, 1, `process ${pid} has children ${children.join(', ')}`);
  return Number(children[0]);
}

/** Resolves once PID has ended (a zombie counts as ended). */
async function untilGone(pid: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await pidAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} is still running`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Lets the process blocked opening a FIFO for writing through, without blocking when none is:
 * a reader that does not wait for a writer. Close it once the writer has written.
 */
function releaseFifo(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_NONBLOCK);
}

describe('spawner concurrency', () => {
  it('a wrapper slow to answer holds up no other start: answers come as each is ready', async () => {
    // Wrapper A blocks writing its identity file: a FIFO stands where it writes it first, and its
    // open waits for a reader. The spawner must start B meanwhile, and relay B's answer first.
    const slowDir = await mkdtemp(join(root, 'job-'));
    await makeFifo(join(slowDir, 'process.tmp'));
    const slowSpec = normalizeSpec({ command: 'true' }, { cwd: slowDir });
    let slowAnswered = false;
    const slow = spawner.start(jobSpawnRequest(slowSpec, 'slow', slowDir, [])).then((reply) => {
      slowAnswered = true;
      return reply;
    });
    let identity: string | undefined;
    try {
      const quick = await start({ command: 'true' });
      assert.equal(quick.reply.kind, 'started');
      assert.equal(quick.record?.kind, 'exited', 'B ran to its end');
      assert.equal(slowAnswered, false, 'A is still writing its identity');
    } finally {
      // Reading the FIFO lets A write its identity through it (also when the test failed, so that
      // no wrapper is left blocked); A then answers and its job runs.
      identity = await readFile(join(slowDir, 'process.tmp'), 'utf8');
    }
    assert.match(identity, /^\d+ \d+ \d+ \d+ \S+\n$/);
    const reply = await slow;
    assert.equal(reply.kind, 'started');
    if (reply.kind === 'started') await reply.exited;
    assert.equal((await readExitRecord(slowDir))?.kind, 'exited');
  });

  it('a full table of starts holds up no removal: it is served past the starts that wait for room', async () => {
    // 64 starts (the spawner's table) each blocked writing its identity file, one more waiting
    // for room. A removal sent behind them was read only once a start answered: up to the start
    // deadline (30 s by default) when they hang. Here the deadline is far off, so only serving it
    // past the waiting start answers it in time.
    const patient = new SpawnerClient({
      path: spawnerPath(),
      log: (line) => logged.push(line),
      spawnTimeoutMs: 600_000,
    });
    const blocked = await Promise.all(
      Array.from({ length: 65 }, async (_, i) => ({
        ...(await startBlockedOnIdentity(patient, { command: 'true' }, `full-${i}`)),
        released: false,
      })),
    );
    // What a job of `nobody` left in its io directory (the removal walks as the job's account).
    const ioDir = await mkdtemp(join(tmpdir(), 'jw-io-'));
    await chmod(ioDir, 0o711);
    const leftover = join(ioDir, 'job');
    await mkdir(join(leftover, 'a', 'b'), { recursive: true });
    await writeFile(join(leftover, 'a', 'b', 'f'), 'left by a job');
    for (const path of [
      leftover,
      join(leftover, 'a'),
      join(leftover, 'a', 'b'),
      join(leftover, 'a', 'b', 'f'),
    ]) {
      await chown(path, 65534, 65534);
    }
    try {
      const reply = await within(
        patient.removeBelow(leftover, { uid: 65534, gid: 65534, groups: [] }),
        20_000,
        'the removal behind 65 starts',
      );
      assert.deepEqual(reply, { kind: 'removed' });
      assert.deepEqual(await readdir(leftover), []);
      // Every start, the one that waited for room included, is answered once let through: reading
      // a FIFO takes the identity its writer is blocked on. All at once: which start waits for
      // room depends on the order its request reached the spawner, and its writer comes only once
      // another start has answered.
      await within(
        Promise.all(
          blocked.map(async (blockedStart) => {
            await readFile(blockedStart.tmp, 'utf8');
            blockedStart.released = true;
            const answer = await blockedStart.started;
            assert.equal(answer.kind, 'started');
            if (answer.kind === 'started') await answer.exited;
          }),
        ),
        60_000,
        'every start let through',
      );
    } finally {
      // Lets through every writer still blocked, should the test have failed before.
      for (const { tmp, released } of blocked) {
        if (!released) await (await releaseFifo(tmp).catch(() => undefined))?.close();
      }
      patient.close();
      await rm(ioDir, { recursive: true, force: true });
    }
  });
});

for (const { way, skip } of WAYS) {
  it(`a start that does not answer in time is given up: its processes killed, the start refused with why, the next one answered (${way})`, {
    skip,
  }, async () => {
    // Whoever writes the identity file blocks in its open for good (a FIFO stands where it goes),
    // as at a hung mount: the job's process, the wrapper suspended until its exec; or the wrapper,
    // its child waiting for the go. Without a deadline the answer never came.
    const hasty = new SpawnerClient({
      path: spawnerPath(),
      log: (line) => logged.push(line),
      forkOnly: way === 'forked',
      spawnTimeoutMs: 200,
    });
    const { dir, tmp, started } = await startBlockedOnIdentity(
      hasty,
      { command: 'touch', args: ['ran'] },
      'stuck',
    );
    try {
      assert.deepEqual(await within(started, 20_000, 'the answer to the stuck start'), {
        kind: 'refused',
        reason:
          'its start did not finish in time: no answer within 200 ms (a working directory, command or file system that hangs?); its processes were killed',
      });
      // The wrapper and the job's process are gone, not left blocked: neither runs anything more.
      await untilNoWrapperProcesses('stuck');
      const next = await start({ command: 'true' }, hasty);
      assert.equal(next.reply.kind, 'started', 'the spawner goes on starting jobs');
      assert.equal(next.record?.kind, 'exited');
    } finally {
      // Lets through a writer still blocked, should the test have failed before it was killed.
      await (await releaseFifo(tmp)).close();
      hasty.close();
    }
    await assert.rejects(readFile(join(dir, 'ran')), { code: 'ENOENT' }, 'the command ran');
    await assert.rejects(lstat(join(dir, 'process')), { code: 'ENOENT' });
  });
}

it("a job's process of another uid is forked: the wrapper answers without waiting for its exec, which a process of that uid could hold up for ever", {
  skip: CANNOT_HOLD_EXEC,
}, async () => {
  // Its exec is held (a lease on the command, as a hung mount would hold it) after its drop to
  // uid 65534, where any process of that uid may stop it (SIGSTOP), as the reviewer's job did in
  // a loop. Sharing the wrapper's memory, the job's process kept the wrapper suspended, and its
  // answer unsent, until its exec; the server records starts in order, so every later start on
  // the node waited too. No deadline is at play: the default is 30 s.
  const held = await holdExec();
  try {
    const dir = await mkdtemp(join(root, 'job-'));
    const spec = normalizeSpec({ command: held.path, args: ['-c', 'exit 0'], cwd: '/tmp' }, { cwd: '/tmp' });
    const request = jobSpawnRequest(spec, 'other-uid', dir, []);
    const reply = await within(
      spawner.start({ ...request, user: { uid: 65_534, gid: 65_534, groups: [] } }),
      20_000,
      'the answer to a start whose exec is held',
    );
    assert.equal(reply.kind, 'started');
    if (reply.kind !== 'started') return;
    // A process of the job's uid can stop it before its exec: it holds up no answer now.
    await run('kill', ['-STOP', String(reply.jobPid)], { uid: 65_534, gid: 65_534 });
    await held.release();
    process.kill(reply.jobPid, 'SIGKILL');
    await reply.exited;
    assert.equal((await readExitRecord(dir))?.kind, 'signaled');
  } finally {
    await held.release();
  }
});

for (const { way, client, skip } of WAYS) {
  it(`keeps a job from taking a write lease on its own output, which would hold up its readers (${way})`, {
    skip,
  }, async () => {
    // F_SETLEASE (1024) with F_WRLCK (1) on its stdout: granted, every open of the file by the
    // server would wait for the lease's break (45 s by default) on its event loop.
    const { dir, record } = await start(
      {
        command: 'perl',
        args: ['-e', 'print STDERR (fcntl(STDOUT, 1024, 1) ? "lease taken\\n" : "lease refused: $!\\n")'],
      },
      client(),
    );
    assert.equal(record?.kind, 'exited');
    assert.equal(
      await readFile(join(dir, 'stderr'), 'utf8'),
      'lease refused: Resource temporarily unavailable\n',
    );
  });
}

for (const { way, client, writer, skip } of WAYS) {
  describe(`failures of the job's process ${way}`, { skip }, () => {
    it('a working directory gone before the start: the exact errno is recorded and nothing ran', async () => {
      const { dir, reply, record } = await start(
        { command: 'touch', args: ['ran'], cwd: '/no/such/dir' },
        client(),
      );
      assert.equal(reply.kind, 'started');
      assert.deepEqual(record && { ...record, at: undefined }, {
        kind: 'failed',
        stage: 'chdir',
        message: 'No such file or directory',
        at: undefined,
        late: false,
      });
      assert.equal(
        await readFile(join(dir, 'stdout'), 'utf8'),
        '',
        'the wrapper wrote nothing into the output',
      );
    });

    it('a file that is not executable fails with "Permission denied", not "command not found"', async () => {
      const script = join(root, 'not-executable.sh');
      await writeFile(script, '#!/bin/sh\necho ran\n');
      await chmod(script, 0o644);
      const { record } = await start({ command: script }, client());
      assert.equal(
        record?.kind === 'failed' && `${record.stage}: ${record.message}`,
        'exec: Permission denied',
      );
    });

    it('an account the kernel refuses fails at the `user` stage, before the working directory and the exec', async () => {
      const dir = await mkdtemp(join(root, 'job-'));
      const spec = normalizeSpec({ command: 'touch', args: ['ran'] }, { cwd: dir });
      const request = jobSpawnRequest(spec, 'job', dir, []);
      // More supplementary groups than NGROUPS_MAX (65536): setgroups(2) answers EINVAL.
      const groups = Array.from({ length: 65_537 }, (_, i) => 70_000 + i);
      const reply = await client().start({ ...request, user: { uid: 61_500, gid: 61_500, groups } });
      assert.equal(reply.kind, 'started');
      if (reply.kind === 'started') await reply.exited;
      const record = await readExitRecord(dir);
      assert.equal(
        record?.kind === 'failed' && `${record.stage}: ${record.message}`,
        'user: Invalid argument',
      );
      await assert.rejects(readFile(join(dir, 'ran')), { code: 'ENOENT' });
    });
  });

  describe(`the identity file, the job's process ${way}`, { skip }, () => {
    it("holds the job's and the wrapper's pids and start times, as the answer does, before the command runs", async () => {
      const dir = await mkdtemp(join(root, 'job-'));
      // The job reads the identity file as its first act: it was on disk before the exec.
      const spec = normalizeSpec({ command: 'cat', args: [join(dir, 'process')] }, { cwd: dir });
      const reply = await client().start(jobSpawnRequest(spec, 'job', dir, []));
      assert.equal(reply.kind, 'started');
      if (reply.kind !== 'started') return;
      await reply.exited;
      assert.equal((await readExitRecord(dir))?.kind, 'exited');
      const [jobPid, jobTicks, wrapperPid, wrapperTicks, bootId] = (
        await readFile(join(dir, 'process'), 'utf8')
      )
        .trim()
        .split(' ');
      assert.deepEqual([jobPid, jobTicks, wrapperPid, wrapperTicks].map(Number), [
        reply.jobPid,
        reply.jobTicks,
        reply.wrapperPid,
        reply.wrapperTicks,
      ]);
      assert.equal(bootId, (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
      assert.ok(reply.jobTicks > 0 && reply.wrapperTicks > 0 && reply.jobTicks >= reply.wrapperTicks);
      assert.equal(await readFile(join(dir, 'stdout'), 'utf8'), await readFile(join(dir, 'process'), 'utf8'));
    });

    it(`is written before the exec by the ${writer === 'job' ? "job's process itself" : 'wrapper'}`, {
      skip: CANNOT_LOOK,
    }, async () => {
      const { tmp, started } = await startBlockedOnIdentity(client(), { command: 'true' });
      let fifo: FileHandle | undefined;
      try {
        let opener: number;
        try {
          opener = await blockedOpener(tmp);
        } finally {
          fifo = await releaseFifo(tmp); // also when the look failed: no writer is left blocked
        }
        const reply = await started;
        assert.equal(reply.kind, 'started');
        if (reply.kind !== 'started') return;
        await reply.exited;
        assert.equal(opener, writer === 'job' ? reply.jobPid : reply.wrapperPid);
      } finally {
        await fifo?.close();
      }
    });

    it('a wrapper killed while the start is under way: the command never runs, and the record says so', {
      skip: CANNOT_LOOK,
    }, async () => {
      const { dir, tmp, started } = await startBlockedOnIdentity(client(), {
        command: 'touch',
        args: ['ran'],
      });
      let fifo: FileHandle | undefined;
      let identity = '';
      try {
        let job: number;
        try {
          // Blocked writing the identity file: the job's process (the wrapper suspended, its
          // parent) or the wrapper (the job's process, its child, waiting for the go).
          const opener = await blockedOpener(tmp);
          const wrapper = writer === 'job' ? parentOf(opener) : opener;
          job = writer === 'job' ? opener : onlyChildOf(wrapper);
          process.kill(wrapper, 'SIGKILL');
          await untilGone(wrapper); // its children are handed on before it is a zombie
        } finally {
          fifo = await releaseFifo(tmp);
        }
        const reply = await started;
        assert.deepEqual(reply, {
          kind: 'refused',
          reason: 'could not create its process: wrapper ended before the job started',
        });
        await untilGone(job);
        // What went through the FIFO (renamed to the identity file's name once written).
        const { bytesRead, buffer } = await fifo.read(Buffer.alloc(4096), 0, 4096, null);
        identity = buffer.toString('utf8', 0, bytesRead);
      } finally {
        await fifo?.close();
      }
      await assert.rejects(readFile(join(dir, 'ran')), { code: 'ENOENT' }, 'the command ran');
      if (writer === 'job') {
        // It wrote its identity before the kill (the server finds the job by it), and then that
        // it never began: the server records it not started, not lost.
        assert.match(identity, /^\d+ \d+ \d+ \d+ \S+\n$/);
        assert.ok((await lstat(join(dir, 'process'))).isFIFO(), 'the identity was renamed into place');
        assert.equal((await readExitRecord(dir))?.kind, 'notstarted');
      } else {
        // The wrapper died writing the identity: no identity, no record (the server: not started).
        assert.equal(identity, '');
        await assert.rejects(lstat(join(dir, 'process')), { code: 'ENOENT' });
        assert.equal(await readExitRecord(dir), undefined);
      }
    });

    it('one that cannot be written refuses the start with the reason: nothing ran, no record', async () => {
      const dir = await mkdtemp(join(root, 'job-'));
      // A directory where the identity file's temporary name goes: its open fails (EISDIR).
      await mkdir(join(dir, 'process.tmp'));
      const spec = normalizeSpec({ command: 'touch', args: ['ran'] }, { cwd: dir });
      const reply = await client().start(jobSpawnRequest(spec, 'job', dir, []));
      assert.deepEqual(reply, {
        kind: 'refused',
        reason: 'could not create its output files: Is a directory',
      });
      await assert.rejects(readFile(join(dir, 'ran')), { code: 'ENOENT' });
      assert.equal(await readExitRecord(dir), undefined);
      await assert.rejects(readFile(join(dir, 'process')), { code: 'ENOENT' });
    });
  });
}

describe('spawner failure paths', () => {
  it('a start timeout that is not a positive integer is refused, naming the option', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new SpawnerClient({ path: spawnerPath(), log: () => {}, spawnTimeoutMs: bad }), {
        name: 'ValidationError',
        field: 'spawnTimeoutMs',
        message: /^Expected `spawnTimeoutMs` to be a positive integer \(milliseconds\), got /,
      });
    }
  });

  it('a field holding a NUL byte is refused before anything is sent', async () => {
    const dir = await mkdtemp(join(root, 'job-'));
    const spec = normalizeSpec({ command: 'true' }, { cwd: dir });
    const request = jobSpawnRequest(spec, 'job', dir, []);
    const reply = await spawner.start({ ...request, argv: ['true', 'a\0b'] });
    assert.equal(reply.kind, 'refused');
    assert.match(reply.kind === 'refused' ? reply.reason : '', /NUL byte/);
  });

  it('a CPU group it cannot join is logged, and its jobs run all the same', async () => {
    const group = join(root, 'no-such-cgroup', 'cgroup.procs');
    let told: (line: string) => void = () => {};
    const line = new Promise<string>((resolve) => {
      told = resolve;
    });
    const joining = new SpawnerClient({ path: spawnerPath(), log: (l) => told(l), cpuGroup: group });
    try {
      const { reply, record } = await start({ command: 'true' }, joining);
      assert.equal(reply.kind, 'started');
      assert.equal(record?.kind, 'exited');
      assert.equal(record?.kind === 'exited' ? record.code : undefined, 0);
      assert.equal(
        await within(line, 20_000, 'the line the spawner logs'),
        `jobworker-spawner: could not join the jobs' CPU group ${group}: No such file or directory`,
      );
    } finally {
      joining.close();
    }
  });

  it('a spawner that cannot be started refuses each request with the reason', async () => {
    const broken = new SpawnerClient({ path: join(root, 'no-such-spawner'), log: () => {} });
    const dir = await mkdtemp(join(root, 'job-'));
    const spec = normalizeSpec({ command: 'true' }, { cwd: dir });
    const replies = await Promise.all([1, 2].map(() => broken.start(jobSpawnRequest(spec, 'job', dir, []))));
    for (const reply of replies) {
      assert.deepEqual(reply, {
        kind: 'refused',
        reason: `could not start the spawner: spawn ${join(root, 'no-such-spawner')} ENOENT`,
      });
    }
    broken.close();
  });
});
