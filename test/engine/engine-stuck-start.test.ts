import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { CANNOT_HOLD_EXEC, holdExec, untilNoWrapperProcesses } from '../helpers/held-exec.ts';
import { within } from '../helpers/wait.ts';

const run = promisify(execFile);
const me = { user: 'tester' };
const nobody = { name: 'nobody', uid: 65_534, gid: 65_534, groups: [65_534], home: '/' };
const waitLimit = () => AbortSignal.timeout(20_000);

/**
 * Whether the spawner makes a job's process of its own account sharing the wrapper's memory here
 * (x86-64, no seccomp filter on clone3): only then does a held exec hold the wrapper's answer.
 */
const SHARING =
  process.arch === 'x64' && /^Seccomp:\s+0$/m.test(readFileSync('/proc/self/status', 'utf8'))
    ? false
    : 'the spawner forks every job here (not x86-64, or clone3 may be filtered): no start waits for an exec';

describe('a start that hangs holds up no other start', () => {
  it('given up after spawnTimeoutMs: it fails to start with why, the starts after it are recorded, and close completes', {
    skip: CANNOT_HOLD_EXEC || SHARING,
  }, async () => {
    // The first job's exec is held, as one of a command on a hung mount is; its process shares the
    // wrapper's memory, so the wrapper cannot answer until the exec. Starts are recorded in claim
    // order: without a deadline the second job's start was never recorded, and close() never
    // finished, until the exec went through.
    const held = await holdExec();
    let h: Harness | undefined = await openHarness({ spawnTimeoutMs: 300 });
    try {
      const marker = join(h.dataDir, 'ran');
      const stuck = await h.engine.start({ command: held.path, args: ['-c', `touch ${marker}`] }, me);
      const next = await h.engine.start({ command: 'true' }, me);
      const [s, n] = await Promise.all([
        h.engine.waitFor(stuck.id, waitLimit()),
        h.engine.waitFor(next.id, waitLimit()),
      ]);
      assert.equal(n.status, 'succeeded');
      assert.equal(s.status, 'failed');
      assert.equal(
        s.exit?.reason,
        'failed to start: its start did not finish in time: no answer within 300 ms (a working directory, command or file system that hangs?); its processes were killed',
      );
      assert.equal(s.process, null, 'no process recorded: its start was not adopted');
      // Its wrapper and its process are gone; the command never runs, even once the exec could.
      await untilNoWrapperProcesses(stuck.id);
      await held.release();
      const after = await h.engine.start({ command: 'true' }, me);
      assert.equal((await h.engine.waitFor(after.id, waitLimit())).status, 'succeeded');
      assert.equal(existsSync(marker), false, 'the command ran');
      await within(h.destroy(), 20_000, "the engine's close");
      h = undefined;
    } finally {
      await held.release();
      await h?.destroy();
    }
  });

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
