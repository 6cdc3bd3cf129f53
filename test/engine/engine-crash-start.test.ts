import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { IDENTITY_FILE, markUnrecorded } from '../../src/runtime/identity-file.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { asSharedStore, type Harness, openHarness } from '../helpers/engine-harness.ts';
import { killProcessGroup, pidAlive, waitForFileText } from '../helpers/wait.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const withCgroups = new Cgroups().mode !== 'none';
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});
const newDataDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-crash-start-'));
  dirs.push(dir);
  return dir;
};

/**
 * An engine host (test/fixtures/engine-host.ts) for `spec`, with `env` beside the test's own:
 * `first(key)` resolves with the value of the first line it prints that has `key`, and rejects
 * when the host exits first or prints what is not JSON.
 */
function engineHost(dataDir: string, spec: object, env: Record<string, string> = {}) {
  const host = spawn(process.execPath, [join(FIXTURES, 'engine-host.ts'), dataDir, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const lines = createInterface({ input: host.stdout! });
  const first = (key: string) =>
    new Promise<string>((resolve, reject) => {
      const done = (): void => {
        lines.off('line', onLine);
        host.off('exit', onExit);
      };
      const onExit = (code: number | null, signal: string | null): void => {
        done();
        reject(new Error(`the engine host exited (${signal ?? code}) before it printed "${key}"`));
      };
      const onLine = (line: string): void => {
        let value: unknown;
        try {
          value = (JSON.parse(line) as Record<string, unknown>)[key];
        } catch {
          done();
          reject(new Error(`the engine host printed what is not JSON: ${line}`));
          return;
        }
        if (typeof value !== 'string') return;
        done();
        resolve(value);
      };
      lines.on('line', onLine);
      host.on('exit', onExit);
    });
  return { host, first };
}

/** An engine host whose store never records a start after the first `hangAfter`: it prints {"hung": id}. */
function hostHangingAfter(
  dataDir: string,
  spec: object,
  hangAfter: number,
  env: Record<string, string> = {},
) {
  const { host, first } = engineHost(dataDir, spec, {
    ...env,
    HOST_HANG_MARK_STARTED_AFTER: String(hangAfter),
  });
  return { host, hung: first('hung') };
}

async function crash(host: ChildProcess): Promise<void> {
  const exited = once(host, 'exit');
  host.kill('SIGKILL');
  await exited;
}

describe('a server killed between spawning a job and recording its start', () => {
  it('defect 13: without cgroups, the next server finds the running job by its identity file, adopts it and stop ends it', async () => {
    const dataDir = await newDataDir();
    const childPid = join(dataDir, 'child.pid');
    const { host, hung } = hostHangingAfter(
      dataDir,
      { command: 'sh', args: ['-c', `sleep 60 & echo $! > ${childPid}; echo ready; wait`] },
      0,
      { HOST_CGROUPS: 'none' },
    );
    const id = await hung;
    await waitForFileText(join(dataDir, 'jobs', id, 'stdout'), 'ready');
    const child = Number((await waitForFileText(childPid, '\n')).trim());
    await crash(host);

    const h = await openHarness({ cgroups: { mode: 'none' } }, dataDir);
    try {
      const adopted = await h.engine.get(id);
      assert.equal(adopted.status, 'running', `recorded ${adopted.status}: ${adopted.exit?.reason}`);
      assert.equal(await pidAlive(adopted.process!.pid), true);
      await h.engine.stop(id, { user: 'alice' }, { graceMs: 5000 });
      const done = await h.engine.waitFor(id);
      assert.equal(done.status, 'stopped');
      assert.equal(await pidAlive(adopted.process!.pid), false, 'the main process is gone');
      assert.equal(await pidAlive(child), false, 'its child, in its process group, is gone');
    } finally {
      await h.destroy();
      if (await pidAlive(child)) process.kill(child, 'SIGKILL');
    }
  });

  it('defect 16: a server SIGKILLed while starting a burst records every job that ran with its real exit status, and runs each once', async () => {
    // A claimed batch is launched together, so other starts of the hung job's batch may be in
    // flight at the crash: a job whose command had not begun then is recorded failed to start
    // (never run twice).
    const dataDir = await newDataDir();
    const log = join(dataDir, 'ran.log');
    const count = 20;
    const { host, hung } = hostHangingAfter(
      dataDir,
      { burst: count, spec: { command: 'sh', args: ['-c', `echo "$JOBWORKER_JOB_ID" >> ${log}; exit 0`] } },
      3,
    );
    const id = await hung;
    // The job ran to its end; only the record of its start is missing.
    await waitForFileText(join(dataDir, 'jobs', id, 'exit'), '\n');
    await crash(host);

    const h = await openHarness({}, dataDir);
    try {
      const { jobs } = await h.engine.list({ limit: 100 });
      assert.equal(jobs.length, count);
      const done: Job[] = await Promise.all(jobs.map((job) => h.engine.waitFor(job.id)));
      const hungJob = done.find((job) => job.id === id)!;
      assert.deepEqual(
        { status: hungJob.status, reason: hungJob.exit?.reason },
        { status: 'succeeded', reason: 'exited with code 0' },
      );
      const notBegun =
        'failed to start: the server stopped while starting it, before its command began; it is not run again';
      assert.deepEqual(
        done
          .filter((job) => job.status !== 'succeeded' && job.exit?.reason !== notBegun)
          .map((job) => job.exit?.reason),
        [],
      );
      const ran = (await readFile(log, 'utf8')).trim().split('\n');
      assert.deepEqual(
        [...ran].sort(),
        done
          .filter((job) => job.status === 'succeeded')
          .map((job) => job.id)
          .sort(),
        'each job recorded succeeded ran exactly once, and no other job ran',
      );
    } finally {
      await h.destroy();
    }
  });

  it('a job marked unrecorded whose processes still run when the next server opens is ended by it, all its processes with it: failed, never retried', {
    skip: !withCgroups && 'its child is ended through the job cgroup, which this host cannot make',
  }, async () => {
    // The server that started it marked it unrecorded (its start answered with an error, the
    // commit done) and died before it stopped it: its command and a child of its still run.
    const dataDir = await newDataDir();
    const log = join(dataDir, 'ran.log');
    const childPid = join(dataDir, 'child.pid');
    const { host, first } = engineHost(dataDir, {
      command: 'sh',
      args: ['-c', `echo "$JOBWORKER_JOB_ID" >> ${log}; sleep 60 & echo $! > ${childPid}; wait`],
      retry: { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } },
    });
    let pid: number | undefined;
    let child: number | undefined;
    let h: Harness | undefined;
    try {
      const id = await first('id');
      const jobDir = join(dataDir, 'jobs', id);
      // "JOB_PID JOB_TICKS WRAPPER_PID WRAPPER_TICKS BOOT_ID", written before the command began.
      pid = Number((await readFile(join(jobDir, IDENTITY_FILE), 'utf8')).split(' ')[0]);
      child = Number((await waitForFileText(childPid, '\n')).trim());
      await crash(host);
      assert.equal(await pidAlive(pid), true, 'its command outlived the server');
      await markUnrecorded(jobDir);
      h = await openHarness({}, dataDir);
      const done = await h.engine.waitFor(id);
      assert.deepEqual(
        { status: done.status, reason: done.exit?.reason, retriedAs: done.retriedAs },
        {
          status: 'failed',
          reason: 'failed to start: its start could not be recorded, so it was stopped; it is not run again',
          retriedAs: null,
        },
      );
      assert.equal(await pidAlive(pid), false, 'its command is gone');
      assert.equal(await pidAlive(child), false, 'and the child it started, in its cgroup');
      assert.equal((await h.engine.list({ limit: 10 })).jobs.length, 1, 'no other attempt was made');
      assert.equal(await readFile(log, 'utf8'), `${id}\n`, 'its command ran once');
    } finally {
      if (host.exitCode === null && host.signalCode === null) await crash(host);
      await h?.destroy();
      if (pid !== undefined) killProcessGroup(pid);
      if (child !== undefined && (await pidAlive(child))) process.kill(child, 'SIGKILL');
    }
  });

  /**
   * A server SIGKILLed between a job's spawn and its recorded start, whose claim another node then
   * gave back (it was declared lost, docs/cluster.md): the job is queued again while its first run
   * goes on. Returns that run's command and child, and the job's id.
   */
  async function orphanedRun(dataDir: string, giveTo?: string) {
    const childPid = join(dataDir, 'child.pid');
    const { host, hung } = hostHangingAfter(
      dataDir,
      { command: 'sh', args: ['-c', `sleep 60 & echo $! > ${childPid}; echo ready; wait`] },
      0,
    );
    try {
      const id = await hung;
      const jobDir = join(dataDir, 'jobs', id);
      await waitForFileText(join(jobDir, 'stdout'), 'ready');
      const pid = Number((await readFile(join(jobDir, IDENTITY_FILE), 'utf8')).split(' ')[0]);
      const child = Number((await readFile(childPid, 'utf8')).trim());
      await rm(childPid);
      await crash(host);
      const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
      try {
        await store.releaseClaim(id, 'test-node');
        if (giveTo) assert.equal((await store.claimReady('default', giveTo, 1))[0]?.id, id);
      } finally {
        await store.close();
      }
      return { id, pid, child, jobDir, childPid };
    } finally {
      if (host.exitCode === null && host.signalCode === null) await crash(host);
    }
  }

  it('a run whose claim was given back is ended when this node claims the job again, which then runs afresh', async () => {
    const dataDir = await newDataDir();
    const { id, pid, child, childPid } = await orphanedRun(dataDir);
    let h: Harness | undefined;
    try {
      assert.equal(await pidAlive(pid), true, 'its command outlived the server');
      h = await openHarness({}, dataDir);
      // Claimed by the open's first dispatch: started by the time it returns, or soon after.
      const event = once(h.engine, 'job:started');
      const now = await h.engine.get(id);
      // Its end is looked for only while it has not started: after, the test's own stop ends it.
      const started =
        now.status === 'running'
          ? now
          : await Promise.race([
              event.then(([job]) => job as Job),
              h.engine.waitFor(id).then((job): Job => {
                throw new Error(`it ended ${job.status} instead: ${job.exit?.reason}`);
              }),
            ]);
      assert.equal(started.id, id, 'claimed again by this node, and started: its directory was made afresh');
      assert.equal(await pidAlive(pid), false, 'the run never recorded is gone');
      assert.equal(await pidAlive(child), false, 'and its child');
      assert.notEqual(started.process?.pid, pid);
      const second = Number((await waitForFileText(childPid, '\n')).trim());
      assert.notEqual(second, child, 'the new run began its own command');
      await h.engine.stop(id, { user: 'alice' }, { graceMs: 0 });
      assert.equal((await h.engine.waitFor(id)).status, 'stopped');
    } finally {
      await h?.destroy();
      killProcessGroup(pid);
      if (await pidAlive(child)) process.kill(child, 'SIGKILL');
    }
  });

  it("a run whose claim another node took is ended at this node's start, and nothing else", async () => {
    const dataDir = await newDataDir();
    const { id, pid, child, jobDir } = await orphanedRun(dataDir, 'other-node');
    let h: Harness | undefined;
    try {
      // Another node's claim is a shared store's (PostgreSQL), which this node takes nothing of.
      h = await openHarness({}, dataDir, asSharedStore);
      const own = await h.engine.start({ command: 'sleep', args: ['60'] }, { user: 'alice' });
      await once(h.engine, 'job:started');
      const done = await h.engine.start({ command: 'true' }, { user: 'alice' });
      await h.engine.waitFor(done.id);
      assert.deepEqual(await h.engine.endUnrecordedRuns(), [id]);
      assert.equal(await pidAlive(pid), false, 'the run never recorded is gone');
      assert.equal(await pidAlive(child), false, 'and its child');
      await assert.rejects(stat(jobDir), { code: 'ENOENT' }, 'what it made is removed');
      await assert.rejects(stat(h.engine.ioPaths(id).dir), { code: 'ENOENT' });
      const taken = await h.engine.get(id);
      assert.deepEqual(
        [taken.status, taken.hold, taken.node],
        ['queued', 'starting', 'other-node'],
        'its record is left',
      );
      assert.equal((await h.engine.get(own.id)).status, 'running', 'a run on record here goes on');
      assert.deepEqual(await h.engine.endUnrecordedRuns(), [], 'nothing is left to end');
      await h.engine.stop(own.id, { user: 'alice' }, { graceMs: 0 });
      await h.engine.waitFor(own.id);
      // The other node goes: its claim comes back, for the cleanup to cancel.
      await h.store.releaseClaim(id, 'other-node');
    } finally {
      await h?.destroy();
      killProcessGroup(pid);
      if (await pidAlive(child)) process.kill(child, 'SIGKILL');
    }
  });

  for (const [unrecordable, title] of [
    [
      '1',
      'a job stopped because its start could not be recorded is not adopted by the next server: failed, never retried',
    ],
    [
      'committed',
      'a job stopped because its recorded start answered with an error (a lost connection) is not adopted by the next server either',
    ],
  ] as const) {
    it(title, async () => {
      const dataDir = await newDataDir();
      const log = join(dataDir, 'ran.log');
      const { host, first } = engineHost(
        dataDir,
        {
          burst: 1,
          spec: {
            command: 'sh',
            args: ['-c', `echo "$JOBWORKER_JOB_ID" >> ${log}; exec sleep 60`],
            retry: { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } },
          },
        },
        { HOST_UNRECORDABLE_START: unrecordable },
      );
      const hung = await first('hung');
      // The job was stopped; only the record of its failure is missing when the server dies.
      await crash(host);

      const h = await openHarness({}, dataDir);
      try {
        const done = await h.engine.waitFor(hung);
        assert.deepEqual(
          { status: done.status, reason: done.exit?.reason, retriedAs: done.retriedAs },
          {
            status: 'failed',
            reason:
              'failed to start: its start could not be recorded, so it was stopped; it is not run again',
            retriedAs: null,
          },
        );
        assert.equal((await h.engine.list({ limit: 10 })).jobs.length, 1, 'no other attempt was made');
        // Stopped at once, it may have been killed before its echo: once at most, never again.
        const ran = await readFile(log, 'utf8').catch(() => '');
        assert.ok(ran === '' || ran === `${hung}\n`, `its command ran once at most: ${JSON.stringify(ran)}`);
      } finally {
        await h.destroy();
      }
    });
  }
});
