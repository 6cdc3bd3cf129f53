import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openWorker, type Worker } from 'jobworker/worker';
import { pino } from 'pino';
import { newJobId } from '../../src/core/ids.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { killProcessGroup, pidAlive } from '../helpers/wait.ts';

async function collect(w: Worker, id: string, stream: 'stdout' | 'stderr' | 'all' = 'all'): Promise<string> {
  let text = '';
  for await (const chunk of w.output(id, { stream })) text += chunk.data.toString();
  return text;
}

describe('openWorker', () => {
  const dirs: string[] = [];
  const fresh = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-worker-'));
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  it('starts a command, follows its output, waits for its end', async () => {
    const w = await openWorker({ dataDir: await fresh() });
    try {
      const job = await w.start({ command: '/bin/sh', args: ['-c', 'echo out; echo err >&2; exit 3'] });
      const [all, end] = await Promise.all([collect(w, job.id), w.wait(job.id)]);
      assert.equal(end.status, 'failed');
      assert.equal(end.exit?.exitCode, 3);
      assert.equal(all.split('\n').sort().join(','), ',err,out');
      assert.equal(await collect(w, job.id, 'stdout'), 'out\n');
      let unfollowed = '';
      for await (const c of w.output(job.id, { stream: 'stderr', follow: false }))
        unfollowed += c.data.toString();
      assert.equal(unfollowed, 'err\n');
      assert.equal((await w.status(job.id)).status, 'failed');
      assert.deepEqual(
        (await w.list()).jobs.map((j) => j.id),
        [job.id],
      );
    } finally {
      await w.close();
    }
  });

  it('stops a job with its process tree', async () => {
    const w = await openWorker({ dataDir: await fresh(), defaultGraceMs: 1000 });
    try {
      const job = await w.start({ command: '/bin/sh', args: ['-c', 'echo up; sleep 60 & sleep 60; wait'] });
      // Running (a stop before its spawn cancels it instead: it never runs).
      for await (const chunk of w.output(job.id)) if (chunk.data.toString().includes('up')) break;
      const stopped = await w.stop(job.id);
      assert.equal(stopped.status, 'stopped');
    } finally {
      await w.close();
    }
  });

  it('reattaches after a restart: the job kept running and its output goes on', async () => {
    const dataDir = await fresh();
    const go = join(dataDir, 'go');
    const first = await openWorker({ dataDir });
    const job = await first.start({
      command: '/bin/sh',
      args: ['-c', `echo one; while [ ! -e ${go} ]; do sleep 0.05; done; echo two`],
    });
    // Read until the first line is there: the job is running before the program "restarts".
    for await (const chunk of first.output(job.id)) if (chunk.data.toString().includes('one')) break;
    await first.close();

    const second = await openWorker({ dataDir });
    try {
      assert.equal((await second.status(job.id)).status, 'running');
      await writeFile(go, '');
      const end = await second.wait(job.id);
      assert.equal(end.status, 'succeeded');
      assert.equal(await collect(second, job.id, 'stdout'), 'one\ntwo\n');
    } finally {
      await second.close();
    }
  });

  it('records its `node` on its jobs, and takes over the jobs a worker under another one left running', async () => {
    const dataDir = await fresh();
    await assert.rejects(openWorker({ dataDir, node: 'no spaces' }), {
      code: 'VALIDATION_FAILED',
      field: 'node',
      message:
        'Expected `node` to be a node id of 1 to 63 letters, digits, dots, dashes or underscores, got `no spaces`',
    });
    const first = await openWorker({ dataDir, node: 'host-a' });
    const job = await first.start({ command: '/bin/sh', args: ['-c', 'echo up; exec sleep 600'] });
    for await (const chunk of first.output(job.id)) if (chunk.data.toString().includes('up')) break;
    assert.equal((await first.status(job.id)).node, 'host-a');
    await first.close();

    const second = await openWorker({ dataDir, node: 'host-b', defaultGraceMs: 0 });
    try {
      assert.deepEqual(
        [(await second.status(job.id)).status, (await second.status(job.id)).node],
        ['running', 'host-b'],
      );
      assert.equal((await second.stop(job.id)).status, 'stopped');
    } finally {
      await second.close();
    }
  });

  it('refuses a directory whose database was lost (missing, or 0 bytes) while its jobs remain; `resetStore` accepts the loss', async () => {
    const dataDir = await fresh();
    const database = join(dataDir, 'jobworker.db');
    const first = await openWorker({ dataDir });
    const job = await first.start({ command: '/bin/sh', args: ['-c', 'echo up; exec sleep 600'] });
    for await (const chunk of first.output(job.id)) if (chunk.data.toString().includes('up')) break;
    const pid = (await first.status(job.id)).process!.pid;
    await first.close();
    try {
      for (const suffix of ['', '-wal', '-shm']) await rm(`${database}${suffix}`, { force: true });
      await assert.rejects(openWorker({ dataDir }), {
        code: 'VALIDATION_FAILED',
        field: 'dataDir',
        message: new RegExp(
          `jobworker\\.db is missing, but .*jobs holds 1 job directory \\(${job.id}\\).*\\{ dataDir, resetStore: true \\}`,
        ),
      });
      assert.equal(existsSync(database), false, 'no empty database was made, for a server to start on');
      // An empty file is no database either: SQLite would make a new one in it.
      await writeFile(database, '');
      await assert.rejects(openWorker({ dataDir }), {
        field: 'dataDir',
        message: /jobworker\.db is empty \(0 bytes\), but .* holds 1 job directory/,
      });
      assert.equal((await stat(database)).size, 0, 'the refusal wrote nothing');
      assert.equal(await pidAlive(pid), true, 'the refusals touched no job');
      await assert.rejects(openWorker({ dataDir, resetStore: 'yes' as never }), {
        message: 'Expected `resetStore` to be true or false, got `yes`',
      });

      const warnings: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
      const reset = await openWorker({ dataDir, resetStore: true, logger });
      try {
        if (new Cgroups().mode !== 'none')
          assert.equal(await pidAlive(pid), false, 'the orphaned job was stopped');
        const aside = (await readdir(dataDir)).filter((name) => name.startsWith('jobs.orphaned-'));
        assert.deepEqual(await readdir(join(dataDir, aside[0]!)), [job.id], 'its directory is kept aside');
        assert.match(warnings.join(''), /resetStore: the database was empty \(0 bytes\); stopped/);
        assert.deepEqual((await reset.list()).jobs, [], 'it starts empty');
      } finally {
        await reset.close();
      }
    } finally {
      if (await pidAlive(pid)) killProcessGroup(pid);
    }
  });

  it('takes the data directory: a second worker on it is refused until the first closes', async () => {
    const dataDir = await fresh();
    const first = await openWorker({ dataDir });
    try {
      await assert.rejects(openWorker({ dataDir }), {
        code: 'VALIDATION_FAILED',
        field: 'dataDir',
        message: new RegExp(
          `Another jobworker server or Worker \\(pid ${process.pid}\\) already uses .*\`dataDir\``,
        ),
      });
    } finally {
      await first.close();
    }
    const second = await openWorker({ dataDir });
    await second.close();
  });

  it('names a bad field', async () => {
    await assert.rejects(openWorker({ dataDir: '' }), {
      message: 'Expected `dataDir` to be a directory path, got ``',
    });
    const w = await openWorker({ dataDir: await fresh() });
    try {
      await assert.rejects(w.start({ command: '' }), { code: 'VALIDATION_FAILED', field: 'command' });
      await assert.rejects(w.status('nope'), { code: 'NOT_FOUND' });
    } finally {
      await w.close();
    }
  });

  it("keeps no webhook events for a server's server-wide webhooks: a later serve has no backlog", async () => {
    const dataDir = await fresh();
    const database = join(dataDir, 'jobworker.db');
    // A server used the directory and configured a server-wide webhook for every event.
    const server = await SqliteJobStore.open(database);
    await server.webhooks.addWebhook({
      id: 'wh-1',
      url: 'https://ops.example.com/hooks/jobworker',
      events: ['job:queued', 'job:started', 'job:finished'],
      secret: 'x'.repeat(32),
      createdAt: new Date(),
      createdBy: 'admin',
    });
    await server.close();

    const w = await openWorker({ dataDir });
    try {
      const job = await w.start({ command: '/bin/true' });
      assert.equal((await w.wait(job.id)).status, 'succeeded');
    } finally {
      await w.close();
    }

    const again = await SqliteJobStore.open(database);
    try {
      assert.deepEqual(await again.webhooks.readOutbox(100), [], 'no event of the Worker job is kept');
      // A server's own connection still records them: the Worker's drop went with its connection.
      const [ran] = (await again.listJobs({ limit: 1 })).jobs;
      assert.ok(ran);
      await again.insertJob({ ...ran, id: newJobId(Date.now()) });
      assert.deepEqual(
        (await again.webhooks.readOutbox(100)).map((e) => e.event),
        ['job:queued', 'job:finished'],
      );
    } finally {
      await again.close();
    }
  });

  it('refuses a notify, which only a server delivers, and creates nothing', async () => {
    const w = await openWorker({ dataDir: await fresh() });
    try {
      await assert.rejects(
        w.start({ command: '/bin/true', notify: { url: 'https://example.com/hooks/jobworker' } }),
        {
          code: 'VALIDATION_FAILED',
          field: 'notify',
          message: /`notify`.*`jobworker serve`/,
        },
      );
      assert.deepEqual((await w.list()).jobs, []);
    } finally {
      await w.close();
    }
  });
  it("tells output()'s onTruncated how many bytes the output cap dropped, followed or not", async () => {
    const w = await openWorker({ dataDir: await fresh(), outputCapBytes: 64 * 1024 });
    try {
      // 1,288,895 bytes: far past the cap.
      const job = await w.start({ command: '/bin/sh', args: ['-c', 'seq 1 200000'] });
      for (const follow of [true, false]) {
        const told: [number, string][] = [];
        let bytes = 0;
        let last = '';
        for await (const chunk of w.output(job.id, {
          stream: 'stdout',
          follow,
          onTruncated: (skippedBytes, stream) => told.push([skippedBytes, stream]),
        })) {
          bytes += chunk.data.length;
          last = chunk.data.toString();
        }
        // Once when the job has ended; a follower slower than the job hears of each drop it met.
        assert.ok(told.length >= 1, `follow ${follow}: told nothing`);
        assert.ok(
          told.every(([, stream]) => stream === 'stdout'),
          JSON.stringify(told),
        );
        const dropped = told.reduce((sum, [skipped]) => sum + skipped, 0);
        assert.equal(dropped + bytes, 1_288_895, `follow ${follow}: dropped and kept are the whole`);
        assert.ok(last.endsWith('200000\n'));
      }
    } finally {
      await w.close();
    }
  });
});
