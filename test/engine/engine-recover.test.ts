import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { JobworkerError } from '../../src/core/errors.ts';
import { newJobId } from '../../src/core/ids.ts';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import type { JobIoPaths } from '../../src/runtime/job-io.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { openHarness } from '../helpers/engine-harness.ts';
import { failingOnce } from '../helpers/failing-once.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';
import { makeJob } from '../store/make-job.ts';

/** A running job of `test-node` whose directory never existed: recovery records it lost. */
function vanished(): Job {
  return makeJob({
    status: 'running',
    node: 'test-node',
    process: { pid: 4242, startTicks: 1, bootId: 'another-boot', cgroups: [] },
  });
}

/** `store`, with the names of the methods called on it, in order, pushed to `calls`. */
function logged(store: JobStore, calls: string[]): JobStore {
  return new Proxy(store, {
    get(real, key) {
      const value = Reflect.get(real, key, real) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(real, args);
      };
    },
  });
}

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

/** A data directory of its own for one test, removed after the file's tests. */
async function newDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-recover-'));
  dirs.push(dir);
  return dir;
}

/** The same root-only guard for every test that makes a directory of another account. */
const asRoot = {
  skip: process.getuid?.() === 0 ? false : 'making a directory of another account takes root',
};

/** Starts one job from a separate engine process and SIGKILLs that process once `ready` holds. */
async function startThenCrash(dataDir: string, spec: object, ready: (jobDir: string) => Promise<unknown>) {
  const host = spawn(process.execPath, [join(FIXTURES, 'engine-host.ts'), dataDir, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: host.stdout! }), 'line')) as [string];
  const { id } = JSON.parse(line) as { id: string };
  const jobDir = join(dataDir, 'jobs', id);
  await ready(jobDir);
  const exited = once(host, 'exit');
  host.kill('SIGKILL');
  await exited;
  return { id, jobDir };
}

describe('engine recovery', () => {
  it('claims nothing before the claims the last server left are recovered, though jobs lost at the start ended first', async () => {
    const dataDir = await newDataDir();
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    const calls: string[] = [];
    // Each lost job's end asks the dispatcher for a pass (its slot is free), while recovery goes on.
    for (let i = 0; i < 3; i++) await store.insertJob(vanished());
    const ready = makeJob({ spec: { command: 'true', args: [] }, owner: 'alice' });
    await store.insertJob(ready);
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store: logged(store, calls) });
    try {
      const done = await engine.waitFor(ready.id);
      assert.deepEqual(
        [done.status, done.attempt, done.exit?.reason],
        ['succeeded', 1, 'exited with code 0'],
      );
      const recovered = calls.indexOf('listStarting');
      const firstClaim = calls.indexOf('claimReady');
      assert.ok(
        recovered >= 0 && firstClaim > recovered,
        `the first claim after recovery: ${calls.join(', ')}`,
      );
    } finally {
      await engine.close();
      await store.close();
    }
  });

  it(
    "removes at open the io directories no job needs any more, each as its owner; a waiting job's stays",
    asRoot,
    async () => {
      const dataDir = await newDataDir();
      const first = await openHarness({}, dataDir);
      const ended = await first.engine.start({ command: 'true' }, { user: 'alice' });
      await first.engine.waitFor(ended.id);
      const waiting = await first.engine.start({ command: 'true', delayMs: 3_600_000 }, { user: 'alice' });
      await first.close();
      // What a server that died before removing them leaves: a job's that ended, one of a job deleted
      // since (another account's, with what it made read-only to itself), and a waiting job's.
      const left = [ended.id, newJobId(), waiting.id].map((id) => first.engine.ioPaths(id));
      for (const paths of left) {
        await mkdir(join(paths.dir, 'sub'), { recursive: true });
        await writeFile(paths.result, '{"secret":1}');
      }
      const [, deleted] = left as [JobIoPaths, JobIoPaths, JobIoPaths];
      await chmod(join(deleted.dir, 'sub'), 0o500);
      for (const path of [deleted.dir, join(deleted.dir, 'sub'), deleted.result])
        await chown(path, 65534, 65534);
      // What that account may not remove (root's, in a directory of root's): a walk as root would.
      const rootOwned = join(deleted.dir, 'root-owned');
      await mkdir(rootOwned);
      await writeFile(join(rootOwned, 'kept'), 'root');
      const h = await openHarness({}, dataDir);
      try {
        await h.engine.ioSwept;
        assert.deepEqual(
          await Promise.all(
            left.map((paths) =>
              stat(paths.dir).then(
                () => true,
                () => false,
              ),
            ),
          ),
          [false, true, true],
          "the deleted job's is walked as its owner: what that account may not remove stays",
        );
        assert.equal(await readFile(join(rootOwned, 'kept'), 'utf8'), 'root');
        assert.deepEqual(await readdir(deleted.dir), ['root-owned'], 'the rest of it went');
      } finally {
        await h.engine.stop(waiting.id, { user: 'alice' }, { graceMs: 0 });
        await h.close();
      }
    },
  );

  it('a close during the sweep waits for it to end, before the store closes', asRoot, async () => {
    const dataDir = await newDataDir();
    const first = await openHarness({}, dataDir);
    await first.close();
    // Io directories of deleted jobs of another account, each with a directory of its own: each
    // is walked as that account (a chmod and a find, a process each), one after the other.
    const left = Array.from({ length: 10 }, () => first.engine.ioPaths(newJobId()));
    try {
      for (const paths of left) {
        await mkdir(join(paths.dir, 'sub'), { recursive: true });
        for (const path of [paths.dir, join(paths.dir, 'sub')]) await chown(path, 65534, 65534);
      }
      const h = await openHarness({}, dataDir);
      let swept = false;
      void h.engine.ioSwept.then(() => {
        swept = true;
      });
      assert.equal(swept, false, 'the sweep still runs when close is called');
      await h.engine.close();
      assert.equal(swept, true, 'the sweep had ended when close returned');
      await h.store.close();
    } finally {
      // They sit in the io root beside the other tests' jobs, outside the data directory.
      for (const paths of left) await rm(paths.dir, { recursive: true, force: true });
    }
  });

  it('a sweep that does not end holds a close no longer than its limit, and says so', async () => {
    const dataDir = await newDataDir();
    const first = await openHarness({}, dataDir);
    await first.close();
    const paths = first.engine.ioPaths(newJobId());
    await mkdir(paths.dir);
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    // A store that never answers the sweep's question about that directory's job.
    let asked: () => void = () => {};
    const sweepAsked = new Promise<void>((resolve) => {
      asked = resolve;
    });
    const stuck = new Proxy(store as JobStore, {
      get(real, key) {
        if (key === 'getJob')
          return () => {
            asked();
            return new Promise(() => {});
          };
        const value = Reflect.get(real, key, real) as unknown;
        return typeof value === 'function' ? value.bind(real) : value;
      },
    });
    const clock = new ManualClock();
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store: stuck, clock, logger });
    try {
      await sweepAsked;
      let closed = false;
      const closing = engine.close().then(() => {
        closed = true;
      });
      for (let second = 0; !closed; second++) {
        assert.ok(second < 60, 'the close still waited 60 s on');
        clock.advance(1000);
        // A few real milliseconds a manual second: the close lets go of its io directory's lock
        // (a file removed) once the wait is over.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await closing;
      assert.ok(
        warnings.some((line) =>
          line.includes(
            'the sweep of left io directories (or the end of unrecorded runs) still ran 5 s into the close',
          ),
        ),
        warnings.join(''),
      );
    } finally {
      await rm(paths.dir, { recursive: true, force: true });
      await store.close();
    }
  });

  it('opens though the loss of a job found at the start cannot be recorded yet, and records it once it can', async () => {
    const dataDir = await newDataDir();
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    const job = vanished();
    await store.insertJob(job);
    const { object: flaky, calls } = failingOnce(
      store as JobStore,
      'markFinished',
      new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (injected)'),
    );
    const engine = await JobEngine.open({ node: 'test-node', dataDir, store: flaky });
    try {
      const lost = await engine.waitFor(job.id);
      assert.deepEqual(
        [lost.status, lost.exit?.reason],
        ['lost', `its job directory is gone: ${join(dataDir, 'jobs', job.id)}`],
      );
      assert.equal(calls(), 2, 'tried again after the failure');
      assert.equal((await store.getJob(job.id))?.status, 'lost');
    } finally {
      await engine.close();
      await store.close();
    }
  });

  it('an open that fails leaves nothing running: the jobs it adopted are let go, their timers cleared', async () => {
    const dataDir = await newDataDir();
    // Printed once the job started: nothing more to wait for.
    const { id } = await startThenCrash(
      dataDir,
      { command: 'sleep', args: ['600'], timeoutMs: 3_600_000 },
      async () => {},
    );
    const store = await SqliteJobStore.open(join(dataDir, 'jobworker.db'));
    const pid = (await store.getJob(id))?.process?.pid;
    assert.ok(pid !== undefined, 'the job runs');
    const clock = new ManualClock(new Date());
    const broken = new Proxy(store, {
      get(real, key) {
        if (key === 'listStarting') return () => Promise.reject(new Error('no such table: jobs (injected)'));
        const value = Reflect.get(real, key, real) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
      },
    });
    try {
      await assert.rejects(
        JobEngine.open({ node: 'test-node', dataDir, store: broken, clock }),
        /no such table: jobs \(injected\)/,
      );
      assert.equal(clock.pending, 0, "the adopted job's timeout and every other timer are cleared");
      assert.equal(await pidAlive(pid), true, 'the job runs on, for the next server to adopt');
      const h = await openHarness({}, dataDir);
      try {
        assert.equal((await h.engine.get(id)).status, 'running', 'a later engine adopts it');
        await h.engine.stop(id, { user: 'root' }, { graceMs: 0 });
        assert.equal((await h.engine.waitFor(id)).status, 'stopped');
      } finally {
        await h.close();
      }
    } finally {
      if (await pidAlive(pid)) process.kill(pid, 'SIGKILL');
      await store.close();
    }
  });

  it('defect 6: a running job whose directory vanished is recorded lost, its processes stopped, and the engine opens', async () => {
    const dataDir = await newDataDir();
    const pidsFile = join(dataDir, 'pids');
    const { id, jobDir } = await startThenCrash(
      dataDir,
      { command: join(FIXTURES, 'stubborn-tree.sh'), args: [pidsFile] },
      (dir) => waitForFileText(join(dir, 'stdout'), 'ready'),
    );
    const pids = (await waitForFileText(pidsFile, '\n')).trim().split(' ').map(Number);
    await rm(jobDir, { recursive: true, force: true });

    const h = await openHarness({}, dataDir);
    try {
      const lost = await h.engine.get(id);
      assert.equal(lost.status, 'lost');
      assert.equal(lost.exit?.reason, `its job directory is gone: ${jobDir}`);
      assert.equal(lost.exit?.exitCode, null);
      assert.deepEqual(await h.store.listRunning('test-node'), []);
      if (h.engine.cgroupMode !== 'none') {
        // With cgroups even the setsid escapee is found; without them only the main process is.
        for (const pid of pids) assert.equal(await pidAlive(pid), false, `pid ${pid} is gone`);
      } else {
        assert.equal(await pidAlive(pids[0]!), false);
      }
      const next = await h.engine.start({ command: 'true' }, { user: 'alice' });
      assert.equal((await h.engine.waitFor(next.id)).status, 'succeeded', 'the engine works');
    } finally {
      for (const pid of pids) if (await pidAlive(pid)) process.kill(pid, 'SIGKILL');
      await h.close();
    }
  });
});
