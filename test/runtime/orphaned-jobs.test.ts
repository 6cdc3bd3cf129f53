import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { IDENTITY_FILE, UNRECORDED_FILE } from '../../src/runtime/identity-file.ts';
import { resetOrphanedJobs } from '../../src/runtime/orphaned-jobs.ts';
import { identify } from '../../src/runtime/process-identity.ts';
import { pidAlive } from '../helpers/wait.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

describe('resetOrphanedJobs', () => {
  // Without cgroups the identity file is all that finds a job's processes: both of its names.
  for (const file of [IDENTITY_FILE, UNRECORDED_FILE]) {
    it(`finds and ends a job by its \`${file}\` file, with no cgroups`, async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'jw-orphans-'));
      dirs.push(dataDir);
      // A job's main process leads its own process group, as the spawner makes it.
      const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      await once(child, 'spawn');
      const exited = once(child, 'exit');
      try {
        const pid = child.pid!;
        const { startTicks, bootId } = identify(pid)!;
        const id = '01a2442e-e5ea-70c3-bb2d-1f54e39e17f0';
        await mkdir(join(dataDir, 'jobs', id), { recursive: true });
        // Its wrapper is gone (the reset ends a job, never a wrapper): any pid does for the record.
        await writeFile(
          join(dataDir, 'jobs', id, file),
          `${pid} ${startTicks} ${pid} ${startTicks} ${bootId}\n`,
        );
        const reset = await resetOrphanedJobs(dataDir, [id], new Cgroups({ mode: 'none' }), systemClock);
        assert.deepEqual(
          { killed: reset.killed, unreachable: reset.unreachable },
          { killed: [id], unreachable: [] },
        );
        await exited;
        assert.equal(await pidAlive(pid), false);
        assert.deepEqual(await readdir(reset.movedTo), [id]);
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
