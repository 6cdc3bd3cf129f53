import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import fs, { type FSWatcher, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { identify } from '../../src/runtime/process-identity.ts';
import { stopProcesses } from '../../src/runtime/stop-processes.ts';

describe('cgroups: waiting for a cgroup to empty', () => {
  const cgroups = new Cgroups({ name: 'jobworker-test' });

  it('defect 7: an error from the cgroup.events watch neither crashes the server nor ends the wait', {
    skip: cgroups.mode !== 'v2' && 'this host has no writable cgroup v2 hierarchy',
  }, async (t) => {
    const dirs = await cgroups.create(`watch-${process.pid}-${Date.now()}`, {}, '/');
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await once(child, 'spawn');
    writeFileSync(join(dirs[0]!, 'cgroup.procs'), String(child.pid));
    // The kernel watch is real; the test only gets hold of it to deliver an error event on it.
    const watchers = new EventEmitter<{ watcher: [FSWatcher] }>();
    const realWatch = fs.watch;
    t.mock.method(fs, 'watch', (...args: Parameters<typeof fs.watch>) => {
      const watcher = realWatch(...args);
      watchers.emit('watcher', watcher);
      return watcher;
    });
    syncBuiltinESMExports();
    t.after(() => {
      t.mock.restoreAll();
      syncBuiltinESMExports();
    });
    const watched = once(watchers, 'watcher');
    const empty = cgroups.whenEmpty(dirs);
    const [watcher] = (await watched) as [FSWatcher];
    watcher.emit('error', new Error('inotify failed (injected)'));
    cgroups.killAll(dirs);
    await empty;
    assert.equal(cgroups.isEmpty(dirs), true);
    cgroups.remove(dirs);
  });

  it('a cgroup.events watch that cannot be had (inotify watches used up) leaves the wait to the poll: a stop keeps its grace', {
    skip: cgroups.mode !== 'v2' && 'this host has no writable cgroup v2 hierarchy',
  }, async (t) => {
    const dirs = await cgroups.create(`nowatch-${process.pid}-${Date.now()}`, {}, '/');
    // In a process group of its own, as a job's process is: the stop signals the group.
    const child = spawn('sleep', ['60'], { stdio: 'ignore', detached: true });
    await once(child, 'spawn');
    writeFileSync(join(dirs[0]!, 'cgroup.procs'), String(child.pid));
    let refused = 0;
    t.mock.method(fs, 'watch', () => {
      refused++;
      throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached, watch'), {
        code: 'ENOSPC',
      });
    });
    syncBuiltinESMExports();
    t.after(() => {
      t.mock.restoreAll();
      syncBuiltinESMExports();
    });
    // Still waiting while the process lives: the refused watch did not end the wait.
    const aborted = new AbortController();
    const waiting = cgroups.whenEmpty(dirs, aborted.signal);
    const settled = await Promise.race([
      waiting.then(
        () => 'empty',
        () => 'rejected',
      ),
      new Promise((resolve) => setImmediate(() => resolve('waiting'))),
    ]);
    assert.equal(settled, 'waiting');
    assert.equal(refused, 1);
    // A stop with a grace: SIGTERM ends `sleep`, the poll sees the cgroup empty, nothing forced.
    const stop = await stopProcesses(
      { pid: child.pid!, ...identify(child.pid!)!, cgroups: dirs },
      cgroups,
      10_000,
      false,
      systemClock,
    ).catch((err: unknown) => err);
    aborted.abort();
    await waiting.catch(() => undefined);
    assert.equal(cgroups.isEmpty(dirs), true);
    cgroups.remove(dirs);
    assert.deepEqual(stop, { forced: false });
  });
});
