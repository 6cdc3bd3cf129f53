import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { trustServerCa } from '../helpers/trust-server.ts';
import { baseEnv, CliProcess, LAUNCHER } from './cli-harness.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

/** Resolves once the process's stderr (its JSON log) has a line containing `text`. */
function logged(serve: CliProcess, text: string): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!serve.stderr.includes(text)) return;
      serve.child.stderr!.off('data', check);
      resolve();
    };
    serve.child.stderr!.on('data', check);
    check();
  });
}

describe('jobworker serve --tasks', () => {
  it('loads the tasks file, and SIGHUP reloads it; a bad file keeps the definitions in force', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-serve-tasks-'));
    dirs.push(dir);
    const dataDir = join(dir, 'data');
    const tasksFile = join(dir, 'tasks.json');
    const define = (tasks: object) => writeFile(tasksFile, JSON.stringify({ tasks }));
    await define({ one: { command: ['true'] } });
    const serve = new CliProcess(
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--tasks', tasksFile, '--json'],
      baseEnv({ JOBWORKER_LOG_FORMAT: 'json' }),
      LAUNCHER,
    );
    try {
      const ready = await serve.waitUntil((stdout) => stdout.trim().endsWith('}'), 'its address as JSON');
      const where = JSON.parse(ready) as { url: string; adminTokenFile: string; caFile: string };
      trustServerCa(where.caFile);
      const token = (await readFile(where.adminTokenFile, 'utf8')).trim();
      const names = async () => {
        const res = await fetch(new URL('v1/tasks', where.url), {
          headers: { authorization: `Bearer ${token}` },
        });
        return ((await res.json()) as { tasks: Array<{ name: string }> }).tasks.map((t) => t.name);
      };
      assert.deepEqual(await names(), ['one']);

      await define({
        one: { command: ['true'] },
        two: { command: ['echo', '{x}'], params: { x: { type: 'string' } } },
      });
      const reloaded = logged(serve, 'task definitions reloaded');
      serve.child.kill('SIGHUP');
      await reloaded;
      assert.deepEqual(await names(), ['one', 'two']);

      await define({ broken: { command: ['echo', '{undeclared}'] } });
      const refused = logged(serve, 'task definitions not reloaded');
      serve.child.kill('SIGHUP');
      await refused;
      assert.match(serve.stderr, /tasks\.broken\.command\[1\]/);
      assert.deepEqual(await names(), ['one', 'two'], 'the definitions in force are kept');
    } finally {
      serve.child.kill('SIGTERM');
      const exited = await serve.result();
      assert.equal(exited.code, 0, exited.stderr);
    }
  });
});
