import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ProcessIdentity } from '../../src/core/job.ts';
import { parseCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { identify } from '../../src/runtime/process-identity.ts';
import { killLeftovers, stopProcesses } from '../../src/runtime/stop-processes.ts';
import { FakeCgroupHost } from '../helpers/fake-cgroups.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

/**
 * A cgroup that cannot be read (the server at its descriptor limit: EMFILE; ENOMEM; EACCES) is not
 * an empty one. Here the read fails with EISDIR (the file is a directory in a fake hierarchy,
 * test/helpers/fake-cgroups.ts): as root, the real cgroup files cannot be made unreadable.
 */

/** Whether `promise` has settled by the next turn of the event loop, and how. */
function settledNow(promise: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  return Promise.race([
    promise.then(
      () => 'resolved' as const,
      () => 'rejected' as const,
    ),
    new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending'))),
  ]);
}

/** The identity of a process that has ended: nothing of the job is left but what its cgroup says. */
async function endedProcess(): Promise<Omit<ProcessIdentity, 'cgroups'>> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  await once(child, 'spawn');
  const identity = { pid: child.pid!, ...identify(child.pid!)! };
  child.kill('SIGKILL');
  await once(child, 'exit');
  return identity;
}

describe('cgroups that cannot be read', () => {
  it('v1: pids and isEmpty throw; a stop is not done while it cannot be read, and tries the kill again on its clock', async (t) => {
    const name = 'jobworker-unreadable-test';
    const host = new FakeCgroupHost(name);
    try {
      const freezer = host.mount('freezer', ['freezer']);
      const cgroups = new Cgroups({ name, mode: 'v1', mounts: parseCgroupMounts(host.mountinfo) });
      const dirs = await cgroups.create(`unreadable-${process.pid}`, {}, tmpdir());
      assert.deepEqual(dirs, [join(freezer, `unreadable-${process.pid}`)]);
      const procs = join(dirs[0]!, 'cgroup.procs');
      mkdirSync(procs);
      // Before: [] and true, so the stop's kill loop killed nothing and its wait ended at once.
      assert.throws(() => cgroups.pids(dirs), { code: 'EISDIR' });
      assert.throws(() => cgroups.isEmpty(dirs), { code: 'EISDIR' });
      assert.doesNotThrow(() => cgroups.killAll(dirs));

      const clock = new ManualClock();
      const stop = stopProcesses({ ...(await endedProcess()), cgroups: dirs }, cgroups, 0, false, clock);
      // No grace: the kill, then its wait of 30 s on the clock. Not done meanwhile.
      await clock.timerSet();
      assert.equal(await settledNow(stop), 'pending');
      // Each wait that runs out on the clock tries the kill again, and waits again.
      clock.advance(30_000);
      await clock.timerSet();
      assert.equal(await settledNow(stop), 'pending');
      // Readable again, naming a live process: the next try kills it.
      const left = spawn('sleep', ['60'], { stdio: 'ignore' });
      t.after(() => left.kill('SIGKILL'));
      await once(left, 'spawn');
      rmdirSync(procs);
      writeFileSync(procs, `${left.pid}\n`);
      const killed = once(left, 'exit');
      clock.advance(30_000);
      assert.deepEqual(await killed, [null, 'SIGKILL']);
      // And once the cgroup reads empty, the stop is done, as a forced one.
      writeFileSync(procs, '');
      assert.deepEqual(await stop, { forced: true });
    } finally {
      host.remove();
    }
  });

  it("v1: what a job left behind is killed and waited for when its cgroup cannot be read, not taken for nothing (nor an error that stalls the job's end)", async () => {
    const name = 'jobworker-unreadable-test';
    const host = new FakeCgroupHost(name);
    try {
      host.mount('freezer', ['freezer']);
      const cgroups = new Cgroups({ name, mode: 'v1', mounts: parseCgroupMounts(host.mountinfo) });
      const dirs = await cgroups.create(`leftovers-${process.pid}`, {}, tmpdir());
      const procs = join(dirs[0]!, 'cgroup.procs');
      mkdirSync(procs);
      const clock = new ManualClock();
      // Before: it threw EISDIR, and the job's end (Supervisor's finish) was never recorded.
      const leftovers = killLeftovers({ ...(await endedProcess()), cgroups: dirs }, cgroups, true, clock);
      await clock.timerSet();
      assert.equal(await settledNow(leftovers), 'pending');
      rmdirSync(procs);
      writeFileSync(procs, '');
      assert.equal(await leftovers, true);
    } finally {
      host.remove();
    }
  });

  it('v2: isEmpty throws when cgroup.events cannot be read, and whenEmpty waits until it reads `populated 0`', async () => {
    const name = 'jobworker-unreadable-test';
    const host = new FakeCgroupHost(name);
    try {
      host.mount('unified', 'cgroup2', { 'cgroup.kill': '' });
      const cgroups = new Cgroups({ name, mode: 'v2', mounts: parseCgroupMounts(host.mountinfo) });
      assert.equal(cgroups.mode, 'v2');
      const dirs = await cgroups.create(`unreadable-${process.pid}`, {}, tmpdir());
      const events = join(dirs[0]!, 'cgroup.events');
      mkdirSync(events);
      assert.throws(() => cgroups.isEmpty(dirs), { code: 'EISDIR' });
      const empty = cgroups.whenEmpty(dirs);
      assert.equal(await settledNow(empty), 'pending');
      rmdirSync(events);
      writeFileSync(events, 'populated 0\nfrozen 0\n');
      await empty;
      // Gone altogether (removed): empty.
      assert.equal(cgroups.isEmpty([join(dirs[0]!, 'gone')]), true);
    } finally {
      host.remove();
    }
  });
});
