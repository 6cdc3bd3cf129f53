import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { openHarness } from '../helpers/engine-harness.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

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
  it('defect 6: a running job whose directory vanished is recorded lost, its processes stopped, and the engine opens', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-recover-'));
    dirs.push(dataDir);
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
