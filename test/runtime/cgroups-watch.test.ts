import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import fs, { type FSWatcher, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Cgroups } from '../../src/runtime/cgroups.ts';

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
});
