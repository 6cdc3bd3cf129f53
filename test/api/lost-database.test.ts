import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { newJobId } from '../../src/core/ids.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { checkForLostDatabase } from '../../src/lost-database.ts';
import { runServer } from '../../src/main.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { baseEnv, jobworker } from '../cli/cli-harness.ts';
import { trustServerCa } from '../helpers/trust-server.ts';
import { killProcessGroup, pidAlive } from '../helpers/wait.ts';
import { untilJobSaid } from './api-harness.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

function logCollector() {
  const lines: { level: number; msg: string }[] = [];
  const logStream = new PassThrough();
  logStream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  return { lines, logStream };
}

describe('a data directory whose database is gone', () => {
  it('defect 18: refuses to start while job directories remain, saying what was found; --reset-store stops the orphans and starts empty', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-lostdb-'));
    dirs.push(dataDir);
    const first = await runServer({ listen: '127.0.0.1:0', dataDir, logLevel: 'silent' });
    trustServerCa(first.caFile);
    const token = (await readFile(first.adminTokenFile, 'utf8')).trim();
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const started = await fetch(`${first.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ command: 'sh', args: ['-c', 'echo up; exec sleep 600'] }),
    });
    const job = (await started.json()) as { id: string; pid: number };
    let pid: number | undefined;
    try {
      // The submission answered once the job was admitted (no pid yet): its pid once it runs.
      pid = (await untilJobSaid(first.url, token, job.id, 'up')).pid!;
      await first.close();
      for (const suffix of ['', '-wal', '-shm'])
        await rm(join(dataDir, `jobworker.db${suffix}`), { force: true });

      // A server that starts after all is closed, so that the failing test ends.
      const refusal = await runServer({ listen: '127.0.0.1:0', dataDir, logLevel: 'silent' }).then(
        async (started) => {
          await started.close();
          return undefined;
        },
        (err: unknown) => err,
      );
      assert.ok(refusal instanceof Error, 'the server refused to start');
      assert.equal((refusal as { code?: string }).code, 'VALIDATION_FAILED');
      assert.equal((refusal as { field?: string }).field, 'dataDir');
      assert.match(
        refusal.message,
        new RegExp(
          `jobworker\\.db is missing, but .*jobs holds 1 job directory \\(${job.id}\\).*--reset-store`,
        ),
      );
      assert.equal(existsSync(join(dataDir, 'jobworker.db')), false, 'no empty database was made');
      assert.equal(await pidAlive(pid), true, 'the refusal touched no job');

      // The CLI says the same in one line, exit 1.
      const refused = await jobworker(['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], baseEnv());
      assert.equal(refused.code, 1, refused.stderr);
      assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
      assert.match(refused.stderr, /is missing, but .* holds 1 job directory.*--reset-store/);

      const { lines, logStream } = logCollector();
      const reset = await runServer({ listen: '127.0.0.1:0', dataDir, logStream, resetStore: true });
      try {
        if (new Cgroups().mode !== 'none') {
          assert.equal(await pidAlive(pid), false, 'the orphaned job was stopped');
          pid = undefined;
        }
        const aside = (await readdir(dataDir)).filter((name) => name.startsWith('jobs.orphaned-'));
        assert.equal(aside.length, 1);
        assert.deepEqual(await readdir(join(dataDir, aside[0]!)), [job.id], 'its directory is kept aside');
        const warning = lines.find((line) => line.level === 40 && line.msg.startsWith('--reset-store'));
        assert.match(warning?.msg ?? '', /stopped 1 orphaned job.*moved 1 job directory to/);
        // Users and tokens were in the lost database too: the server issued a new admin token.
        const renewed = (await readFile(reset.adminTokenFile, 'utf8')).trim();
        assert.notEqual(renewed, token);
        assert.equal((await fetch(`${reset.url}/v1/jobs`, { headers: auth })).status, 401);
        const list = await fetch(`${reset.url}/v1/jobs`, { headers: { authorization: `Bearer ${renewed}` } });
        assert.deepEqual(((await list.json()) as { jobs: unknown[] }).jobs, [], 'it starts empty');
      } finally {
        await reset.close();
      }
    } finally {
      if (pid !== undefined && (await pidAlive(pid))) killProcessGroup(pid);
    }
  });

  it("an empty (0-byte) database is as lost as a missing one to serve's check, unless a write-ahead log holds its pages", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-lostdb-'));
    dirs.push(dataDir);
    await mkdir(join(dataDir, 'jobs', newJobId()), { recursive: true });
    const database = join(dataDir, 'jobworker.db');
    await writeFile(database, '');
    await assert.rejects(checkForLostDatabase(dataDir, false, silentLogger), {
      code: 'VALIDATION_FAILED',
      field: 'dataDir',
      message:
        /jobworker\.db is empty \(0 bytes\), but .* holds 1 job directory .*`jobworker serve --reset-store`/,
    });
    await writeFile(`${database}-wal`, 'frames');
    await checkForLostDatabase(dataDir, false, silentLogger);
  });
});
