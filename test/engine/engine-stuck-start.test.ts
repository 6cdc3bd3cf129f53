import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { CANNOT_HOLD_EXEC, holdExec } from '../helpers/held-exec.ts';
import { within } from '../helpers/wait.ts';

const run = promisify(execFile);
const nobody = { name: 'nobody', uid: 65_534, gid: 65_534, groups: [65_534], home: '/' };
const waitLimit = () => AbortSignal.timeout(20_000);

describe('a start that hangs holds up no other start', () => {
  it('a job of another account is recorded started before its exec: a process of that account stopping it holds up nothing', {
    skip: CANNOT_HOLD_EXEC,
  }, async () => {
    // As the reviewer's job did: a process of the job's account stops the job's process between
    // its drop to that account and its exec (here held, so that the stop lands there for sure).
    // Sharing the wrapper's memory, it kept the wrapper from answering; the start was never
    // recorded, nor any start after it on the node, and close() never finished. No deadline is at
    // play: the default is 30 s.
    const held = await holdExec();
    let h: Harness | undefined = await openHarness();
    try {
      const owner = { user: 'al', account: nobody };
      const stuck = await h.engine.start({ command: held.path, args: ['-c', 'exit 0'], cwd: '/tmp' }, owner);
      const started = await within(h.engine.untilStarted(stuck.id), 20_000, 'the start of the held job');
      assert.equal(started.status, 'running');
      const pid = started.process?.pid;
      assert.ok(pid !== undefined);
      await run('kill', ['-STOP', String(pid)], { uid: nobody.uid, gid: nobody.gid });
      await held.release();
      const next = await h.engine.start({ command: 'true', cwd: '/tmp' }, owner);
      assert.equal((await h.engine.waitFor(next.id, waitLimit())).status, 'succeeded');
      // The stopped job is stopped as any other.
      await h.engine.stop(stuck.id, owner, { graceMs: 0 });
      assert.equal((await h.engine.waitFor(stuck.id, waitLimit())).status, 'stopped');
      await within(h.destroy(), 20_000, "the engine's close");
      h = undefined;
    } finally {
      await held.release();
      await h?.destroy();
    }
  });
});
