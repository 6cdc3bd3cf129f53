import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { isSameProcessAlive } from '../../src/runtime/process-identity.ts';
import { followAll, openHarness } from '../helpers/engine-harness.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
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
    process.kill(-recorded!.process!.pid, 'SIGKILL');
    while (isSameProcessAlive(recorded!.process!)) await new Promise((r) => setImmediate(r));

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
});
