import assert from 'node:assert/strict';
import { watch, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';

const me = { user: 'tester' };
const v2 = new Cgroups().mode === 'v2';
const needsV2 = { skip: !v2 && 'the freezer state is read from cgroup v2 here', timeout: 60_000 };

/** The v2 cgroup of a job (the tracking one the engine made). */
function cgroupOf(job: Job): string {
  const dir = job.process?.cgroups[0];
  assert.ok(dir, 'the job has a cgroup');
  return dir;
}

/** Resolves once the kernel reports the cgroup frozen (or thawed): a watch on cgroup.events, no polling. */
async function whenFrozen(dir: string, frozen: boolean): Promise<void> {
  const file = join(dir, 'cgroup.events');
  const want = `frozen ${frozen ? 1 : 0}`;
  const matches = async () => (await readFile(file, 'utf8')).includes(want);
  if (await matches()) return;
  await new Promise<void>((resolve, reject) => {
    const watcher = watch(file, () => {
      matches().then((yes) => {
        if (yes) {
          watcher.close();
          resolve();
        }
      }, reject);
    });
    // The state may have changed between the first look and the watch.
    matches().then((yes) => {
      if (yes) {
        watcher.close();
        resolve();
      }
    }, reject);
  });
}

async function frozenNow(job: Job): Promise<boolean> {
  return (await readFile(join(cgroupOf(job), 'cgroup.events'), 'utf8')).includes('frozen 1');
}

describe('pause and restart', () => {
  const harnesses: Harness[] = [];
  after(async () => {
    for (const h of harnesses.reverse()) await h.close().catch(() => {});
    for (const h of harnesses) await rm(h.dataDir, { recursive: true, force: true, maxRetries: 10 });
  });

  /** A running job whose server has closed (the job runs on): the state a crash leaves. */
  async function runningJobWithServerGone(): Promise<{ h: Harness; job: Job }> {
    const h = await openHarness();
    harnesses.push(h);
    const job = await startRunning(h.engine, { command: 'sleep', args: ['600'] }, me);
    await h.engine.close();
    return { h, job };
  }

  /** Opens the next server on the same data directory, as a restart after the crash would. */
  async function restart(h: Harness): Promise<Harness> {
    const again = await h.reopen();
    harnesses.push(again);
    return again;
  }

  it('defect 8: when the store records a job paused, its processes are already frozen', needsV2, async () => {
    const h = await openHarness();
    harnesses.push(h);
    const running = await startRunning(h.engine, { command: 'sleep', args: ['600'] }, me);
    const job = running;
    // Look at the processes at the very moment the pause is written to the store: was the
    // freeze already asked of the kernel (cgroup.freeze holds the requested state at once)?
    let frozenWhenRecorded: boolean | undefined;
    const store = new Proxy(h.store, {
      get(target, key) {
        if (key === 'markPaused') {
          return async (id: string, at: Date) => {
            frozenWhenRecorded =
              (await readFile(join(cgroupOf(running), 'cgroup.freeze'), 'utf8')).trim() === '1';
            return target.markPaused(id, at);
          };
        }
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    await h.engine.close();
    const engine = await JobEngine.open({ node: 'test-node', dataDir: h.dataDir, store });
    try {
      const paused = await engine.pause(job.id);
      assert.equal(paused.status, 'paused');
      assert.equal(frozenWhenRecorded, true);
      await engine.stop(job.id, me, { graceMs: 5000 });
      assert.equal((await engine.waitFor(job.id)).status, 'stopped');
    } finally {
      await engine.close();
    }
  });

  it(
    'defect 8: a job recorded paused by a server that died before freezing it is frozen on recovery',
    needsV2,
    async () => {
      const { h, job } = await runningJobWithServerGone();
      // What the old order left after a crash: the record says paused, the processes run.
      await h.store.markPaused(job.id, new Date());
      assert.equal(await frozenNow(job), false);
      const again = await restart(h);
      await whenFrozen(cgroupOf(job), true);
      assert.equal((await again.engine.get(job.id)).status, 'paused');
      // And it resumes and stops as any paused job does.
      assert.equal((await again.engine.resume(job.id)).status, 'running');
      await whenFrozen(cgroupOf(job), false);
      await again.engine.stop(job.id, me, { graceMs: 5000 });
      assert.equal((await again.engine.waitFor(job.id)).status, 'stopped');
    },
  );

  it(
    'defect 8: a job frozen by a server that died before recording the pause is thawed on recovery',
    needsV2,
    async () => {
      const { h, job } = await runningJobWithServerGone();
      // What the new order leaves after a crash between the freeze and the record.
      writeFileSync(join(cgroupOf(job), 'cgroup.freeze'), '1');
      await whenFrozen(cgroupOf(job), true);
      const again = await restart(h);
      await whenFrozen(cgroupOf(job), false);
      assert.equal((await again.engine.get(job.id)).status, 'running');
      await again.engine.stop(job.id, me, { graceMs: 5000 });
      const stopped = await again.engine.waitFor(job.id);
      assert.equal(stopped.status, 'stopped');
      assert.equal(stopped.stopForced, false, 'it was thawed, so SIGTERM ended it');
    },
  );
});
