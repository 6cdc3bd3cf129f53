import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Job } from '../../src/core/job.ts';
import { isSameProcessAlive } from '../../src/runtime/process-identity.ts';
import { followAll, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { killProcessGroup, pidAlive, waitForFileText } from '../helpers/wait.ts';
import { makeJob } from '../store/make-job.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

/** Starts a job from a separate engine process, then SIGKILLs that process. */
async function startThenCrash(
  dataDir: string,
  spec: object,
  crashWhen: (jobDir: string) => Promise<unknown>,
) {
  const host = spawn(process.execPath, [join(FIXTURES, 'engine-host.ts'), dataDir, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: host.stdout! }), 'line')) as [string];
  const { id } = JSON.parse(line) as { id: string };
  const jobDir = join(dataDir, 'jobs', id);
  await crashWhen(jobDir);
  const exited = once(host, 'exit');
  host.kill('SIGKILL');
  await exited;
  return { id, jobDir };
}

const newDataDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-restart-'));
  dirs.push(dir);
  return dir;
};
const numbers = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join('');

describe('engine restart', () => {
  it('a job outlives a SIGKILLed server; the next one adopts it with no gap, no duplicate and its real exit code', async () => {
    const dataDir = await newDataDir();
    const { id } = await startThenCrash(
      dataDir,
      { command: join(FIXTURES, 'counter.sh'), args: ['300', '7'] },
      (dir) => waitForFileText(join(dir, 'stdout'), '\n20\n'),
    );
    const h = await openHarness({}, dataDir);
    try {
      const adopted = await h.engine.get(id);
      assert.equal(adopted.status, 'running');
      assert.ok(isSameProcessAlive(adopted.process!), 'the job kept running while no server ran');
      const followed = await followAll(h.engine, id, 'stdout');
      assert.equal(followed.data.toString(), numbers(1, 300), 'every line once, in order');
      assert.equal(followed.end.status, 'failed');
      assert.equal(followed.end.exit?.exitCode, 7);
      assert.equal(followed.end.exit?.reason, 'exited with code 7');
    } finally {
      await h.close();
    }
  });

  it('stop works on an adopted job and ends its whole tree', async () => {
    const dataDir = await newDataDir();
    const pidsFile = join(dataDir, 'pids');
    const { id } = await startThenCrash(
      dataDir,
      { command: join(FIXTURES, 'stubborn-tree.sh'), args: [pidsFile] },
      (dir) => waitForFileText(join(dir, 'stdout'), 'ready'),
    );
    const pids = (await waitForFileText(pidsFile, '\n')).trim().split(' ').map(Number);
    const h = await openHarness({}, dataDir);
    try {
      const { changed } = await h.engine.stop(id, { user: 'alice' }, { graceMs: 200 });
      assert.equal(changed, true);
      const done = await h.engine.waitFor(id);
      assert.equal(done.status, 'stopped');
      for (const pid of pids) assert.equal(await pidAlive(pid), false);
      if (h.engine.cgroupMode !== 'none') assert.equal(done.stopForced, true);
    } finally {
      await h.close();
    }
  });

  it('a job that exits while no server runs gets its real exit code at the next start', async () => {
    const dataDir = await newDataDir();
    // The job waits for the crash (its go-file), then exits 5 while no engine runs.
    const go = join(dataDir, 'go');
    const { id, jobDir } = await startThenCrash(
      dataDir,
      {
        command: 'sh',
        args: ['-c', `echo started; while [ ! -e ${go} ]; do sleep 0.01; done; echo bye; exit 5`],
      },
      (dir) => waitForFileText(join(dir, 'stdout'), 'started'),
    );
    await import('node:fs/promises').then((fs) => fs.writeFile(go, ''));
    await waitForFileText(join(jobDir, 'exit'), '\n');
    const h = await openHarness({}, dataDir);
    try {
      const done = await h.engine.waitFor(id);
      assert.equal(done.status, 'failed');
      assert.equal(done.exit?.exitCode, 5);
      assert.equal((await followAll(h.engine, id, 'all')).data.toString(), 'started\nbye\n');
    } finally {
      await h.close();
    }
  });

  it('after recovery no job is running that is not running; one that vanished without a record is lost', async () => {
    const dataDir = await newDataDir();
    const { id } = await startThenCrash(
      dataDir,
      { command: 'sh', args: ['-c', 'echo up; exec sleep 60'] },
      (dir) => waitForFileText(join(dir, 'stdout'), 'up'),
    );
    // While no server runs, the job's processes die without leaving an exit record (as in an OOM kill of the whole tree).
    const before = await openHarness({}, dataDir);
    const recorded = await before.store.getJob(id);
    await before.close();
    // The wrapper first, so nothing is left to record the job's end; then the job's group.
    const { wrapper, bootId } = recorded!.process!;
    process.kill(wrapper!.pid, 'SIGKILL');
    killProcessGroup(recorded!.process!.pid);
    while (isSameProcessAlive(recorded!.process!) || isSameProcessAlive({ ...wrapper!, bootId })) {
      await new Promise((r) => setImmediate(r));
    }

    const h = await openHarness({}, dataDir);
    try {
      const lost = await h.engine.waitFor(id);
      assert.equal(lost.status, 'lost');
      assert.equal(lost.exit?.exitCode, null);
      assert.match(lost.exit?.reason ?? '', /no exit status/);
      const running = await h.store.listRunning('test-node');
      assert.deepEqual(
        running.filter((job: Job) => !isSameProcessAlive(job.process!)),
        [],
      );
    } finally {
      await h.close();
    }
  });

  it('a job left running under another node id (a new host name) is taken over: its stop ends its process and frees its slot', async () => {
    const dataDir = await newDataDir();
    const first = await openHarness({ node: 'old-host' }, dataDir);
    await first.engine.setQueue('one', { concurrency: 1 });
    const job = await first.engine.start(
      { command: 'sleep', args: ['600'], queue: 'one' },
      { user: 'alice' },
    );
    const pid = (await first.engine.untilStarted(job.id)).process!.pid;
    await first.close();
    // The same data directory, opened under another node id: a new container, its new host name.
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const h = await openHarness({ node: 'new-host', logger }, dataDir);
    try {
      const adopted = await h.engine.get(job.id);
      assert.deepEqual([adopted.status, adopted.node], ['running', 'new-host']);
      const next = await h.engine.start({ command: 'true', queue: 'one' }, { user: 'alice' });
      await h.engine.stop(job.id, { user: 'alice' }, { graceMs: 0 });
      const stopped = await h.engine.waitFor(job.id, AbortSignal.timeout(20_000));
      assert.equal(stopped.status, 'stopped');
      assert.equal(await pidAlive(pid), false, 'its process is gone');
      const done = await h.engine.waitFor(next.id, AbortSignal.timeout(20_000));
      assert.equal(done.status, 'succeeded', 'the queue ran its next job in the slot it freed');
      const told = warnings.filter((line) => line.includes('took over'));
      assert.equal(told.length, 1, warnings.join(''));
      assert.match(told[0]!, /took over 1 job\(s\) left running under another node id, \\"old-host\\" \(1\)/);
      assert.match(told[0]!, /jobworker serve --node-id/);
    } finally {
      await h.destroy();
      if (await pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});

describe('engine close', () => {
  it('a waitFor still waiting rejects at close, for a running and a queued job; the running one runs on and is adopted', async () => {
    const dataDir = await newDataDir();
    const h = await openHarness({}, dataDir);
    const me = { user: 'tester' };
    const running = await h.engine.untilStarted(
      (await h.engine.start({ command: 'sleep', args: ['600'] }, me)).id,
    );
    // Queued for an hour: nothing else would end the wait.
    const queued = await h.engine.start(
      { command: 'true', runAt: new Date(Date.now() + 3_600_000).toISOString() },
      me,
    );
    const ids = [running.id, queued.id];
    const waits = ids.map((id) =>
      h.engine.waitFor(id).then(
        (job) => `resolved: ${job.status}`,
        (err: { code?: string; message?: string }) => `${err.code}: ${err.message}`,
      ),
    );
    await h.engine.close();
    assert.deepEqual(
      await Promise.all(waits),
      ids.map(
        (id) =>
          `ILLEGAL_TRANSITION: The job engine closed before job ${id} ended; the job runs on, and a server started on its data directory adopts it`,
      ),
    );
    await h.store.close();
    assert.equal(await pidAlive(running.process!.pid), true, 'the job runs on');
    const next = await openHarness({}, dataDir);
    try {
      assert.equal((await next.engine.get(running.id)).status, 'running', 'adopted');
      await next.engine.stop(running.id, me, { graceMs: 0 });
      assert.equal((await next.engine.waitFor(running.id)).status, 'stopped');
    } finally {
      await next.destroy();
    }
  });

  it("a waitFor aborted by its caller rejects with the caller's reason, not the close's", async () => {
    const h = await openHarness();
    try {
      const queued = await h.engine.start(
        { command: 'true', runAt: new Date(Date.now() + 3_600_000).toISOString() },
        { user: 'tester' },
      );
      const controller = new AbortController();
      const wait = h.engine.waitFor(queued.id, controller.signal).catch((err: Error) => err.message);
      controller.abort(new Error('the caller gave up'));
      // The close comes before the wait has seen its caller's abort.
      await h.engine.close();
      assert.equal(await wait, 'the caller gave up');
    } finally {
      await h.destroy();
    }
  });

  it('a follow still open ends at close with an error that says so, for a running and a queued job', async () => {
    const h = await openHarness();
    try {
      const me = { user: 'tester' };
      const running = await h.engine.untilStarted(
        (await h.engine.start({ command: 'sh', args: ['-c', 'echo up; exec sleep 600'] }, me)).id,
      );
      const queued = await h.engine.start(
        { command: 'true', runAt: new Date(Date.now() + 3_600_000).toISOString() },
        me,
      );
      const ended = [running.id, queued.id].map(async (id) => {
        try {
          for await (const _event of h.engine.follow(id, { selector: 'all', cursor: 0 })) {
            // read on until the follow ends
          }
          return 'ended without an error';
        } catch (err) {
          return `${(err as { code?: string }).code}: ${(err as Error).message}`;
        }
      });
      // The running job's output is being followed (its first line read) before the close.
      await waitForFileText(join(h.dataDir, 'jobs', running.id, 'stdout'), 'up');
      await h.engine.close();
      assert.deepEqual(
        await Promise.all(ended),
        [running.id, queued.id].map(
          (id) =>
            `ILLEGAL_TRANSITION: The job engine closed before job ${id} ended; the job runs on, and a server started on its data directory adopts it`,
        ),
      );
      assert.equal(h.engine.progressListenerCount(), 0);
    } finally {
      // The job runs on past the close, as it should: ended here by its process group.
      const { jobs } = await h.store.listJobs({ limit: 10, status: ['running'] });
      for (const job of jobs)
        if (job.process && (await pidAlive(job.process.pid))) killProcessGroup(job.process.pid);
      await h.destroy();
    }
  });
});

describe('engine restart with queued work', () => {
  it('after a SIGKILL with waiting, delayed, dependent and retrying jobs, a restart runs them all once', async () => {
    const dataDir = await newDataDir();
    const gate = join(dataDir, 'gate');
    const log = join(dataDir, 'ran');
    const note = (name: string) => `echo ${name} >> '${log}'`;
    const hour = 3600_000;
    const specs = [
      // 0: holds the only slot of queue `one` until the gate opens.
      {
        command: 'sh',
        args: ['-c', `while [ ! -e '${gate}' ]; do sleep 0.01; done; ${note('A')}`],
        queue: 'one',
      },
      // 1: waits for that slot.
      { command: 'sh', args: ['-c', note('W')], queue: 'one' },
      // 2: waits an hour.
      { command: 'sh', args: ['-c', note('D')], delayMs: hour },
      // 3: waits for job 0.
      { command: 'sh', args: ['-c', note('C')], after: ['$0'] },
      // 4: fails at once; its second attempt waits an hour of backoff.
      {
        command: 'sh',
        args: ['-c', `${note('R')}; exit 1`],
        retry: { attempts: 2, backoff: { initialMs: hour, factor: 1, maxMs: hour } },
      },
    ];
    // The host's queue `one` must have its limit before any job is submitted to it.
    const setup = await openHarness({}, dataDir);
    await setup.engine.setQueue('one', { concurrency: 1 });
    await setup.close();

    const host = spawn(process.execPath, [join(FIXTURES, 'engine-host.ts'), dataDir, JSON.stringify(specs)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: host.stdout! });
    let ids: string[] = [];
    let retriedFirstAttempt = false;
    for await (const line of lines) {
      const message = JSON.parse(line) as { ids?: string[]; finished?: string };
      if (message.ids) ids = message.ids;
      if (ids.length > 0 && message.finished === ids[4]) retriedFirstAttempt = true;
      if (ids.length > 0 && retriedFirstAttempt) break;
    }
    const exited = once(host, 'exit');
    host.kill('SIGKILL');
    await exited;

    // Two hours later: the delay and the backoff have both passed.
    const clock = new ManualClock(new Date(Date.now() + 2 * hour));
    const h = await openHarness({ clock }, dataDir);
    try {
      const [a, w, d, c, r] = await Promise.all(ids.map((id) => h.engine.get(id)));
      assert.equal(a!.status, 'running', 'A was adopted');
      assert.equal(w!.status, 'queued', 'W still waits for the slot A holds');
      assert.equal(c!.status, 'queued', 'C still waits for A');
      assert.equal(r!.status, 'failed');
      assert.notEqual(r!.retriedAs, null);
      await writeFile(gate, '');
      for (const id of [ids[0]!, ids[1]!, ids[3]!]) {
        assert.equal((await h.engine.waitFor(id)).status, 'succeeded');
      }
      assert.equal((await h.engine.waitFor(d!.id)).status, 'succeeded');
      const second = await h.engine.waitFor(r!.retriedAs!);
      assert.equal(second.status, 'failed');
      assert.equal(second.attempt, 2);
      const ran = (await readFile(log, 'utf8')).trim().split('\n').sort();
      assert.deepEqual(ran, ['A', 'C', 'D', 'R', 'R', 'W'], 'each ran once, R once per attempt');
      const all = await h.engine.list({ limit: 100 });
      assert.equal(all.jobs.length, 6, 'no job was created twice');
      assert.ok(all.jobs.every((j) => j.status === 'succeeded' || j.status === 'failed'));
    } finally {
      await h.destroy();
    }
  });
});

describe('engine restart: claims cut short', () => {
  it('a claimed job never spawned runs once; one sent to the spawner whose command never began fails and is not run again; one marked unrecorded ends as such', async () => {
    const dataDir = await newDataDir();
    const setup = await openHarness({}, dataDir);
    const never = makeJob({
      spec: { command: 'sh', args: ['-c', 'echo ran'], cwd: dataDir },
      node: 'test-node',
    });
    const begun = makeJob({ spec: { command: 'true', cwd: dataDir }, node: 'test-node' });
    const marked = makeJob({ spec: { command: 'true', cwd: dataDir }, node: 'test-node' });
    await setup.store.insertJob({ ...never, hold: 'starting' });
    await setup.store.insertJob({ ...begun, hold: 'starting' });
    await setup.store.insertJob({ ...marked, hold: 'starting' });
    await setup.close();
    // What a server that died between making the job directory and its wrapper recording the
    // job's identity (before the command runs) leaves.
    await mkdir(join(dataDir, 'jobs', begun.id));
    // A job whose command began but whose start could not be recorded, marked so, its mark
    // unreadable: the mark's presence decides, as for a job recorded running.
    await mkdir(join(dataDir, 'jobs', marked.id));
    await writeFile(join(dataDir, 'jobs', marked.id, 'process.unrecorded'), 'not an identity\n');

    const h = await openHarness({}, dataDir);
    try {
      const ran = await h.engine.waitFor(never.id);
      assert.equal(ran.status, 'succeeded');
      const failed = await h.engine.get(begun.id);
      assert.equal(failed.status, 'failed');
      assert.match(failed.exit!.reason, /server stopped while starting it, before its command began/);
      const ended = await h.engine.waitFor(marked.id);
      assert.equal(ended.status, 'failed');
      assert.match(
        ended.exit!.reason,
        /its start could not be recorded, so it was stopped; it is not run again/,
      );
      assert.deepEqual(await h.store.listStarting('test-node'), []);
    } finally {
      await h.destroy();
    }
  });
});
