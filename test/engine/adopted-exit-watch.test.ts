import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { AdoptedExitWatch } from '../../src/engine/adopted-exit-watch.ts';
import { identify, type RecordedProcess } from '../../src/runtime/process-identity.ts';

function recorded(pid: number): RecordedProcess {
  const identity = identify(pid);
  assert.ok(identity, `process ${pid} is found in /proc`);
  return { pid, ...identity };
}

describe('AdoptedExitWatch', () => {
  it('tells when a watched process ends, then stops polling; after close it watches nothing more', async () => {
    const watch = new AdoptedExitWatch(20);
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await once(child, 'spawn');
    try {
      const exited = watch.exited(recorded(child.pid!));
      assert.equal(watch.polling, true);
      child.kill('SIGKILL');
      await once(child, 'exit');
      await exited;
      assert.equal(watch.polling, false, 'no process left to watch: the poll stops');

      // A process that lives, asked after close (a wrapper orphaned by the spawner's end at the
      // engine's close): no poll starts again, and the wait never ends.
      const other = spawn('sleep', ['60'], { stdio: 'ignore' });
      await once(other, 'spawn');
      try {
        watch.close();
        let ended = false;
        void watch.exited(recorded(other.pid!)).then(() => {
          ended = true;
        });
        assert.equal(watch.polling, false, 'a closed watch does not poll again');
        other.kill('SIGKILL');
        await once(other, 'exit');
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(ended, false);
      } finally {
        other.kill('SIGKILL');
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
});
