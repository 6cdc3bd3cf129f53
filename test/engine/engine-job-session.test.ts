import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isSameProcessAlive } from '../../src/runtime/process-identity.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { waitForFileText } from '../helpers/wait.ts';

/** An unprivileged account: what a reviewer's job ran as when it joined its wrapper's group. */
const NOBODY = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534], home: '/' };

/** Field 6 of /proc/PID/stat: the process's session id. */
async function sessionOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

// Without cgroups a stop reaches a job only through its process group: a job's main process that
// could move to another group (its wrapper's, or its namespace's pid 1's, which shared its session)
// was out of reach of every SIGTERM and SIGKILL, and its stop never ended.
describe('a job leads a session of its own, so it cannot leave its process group', {
  skip: process.getuid?.() === 0 ? false : 'running a job as another account takes root',
}, () => {
  let h: Harness;
  before(async () => {
    h = await openHarness({ cgroups: { mode: 'none' } });
  });
  after(() => h.destroy());

  // The spawner shares its wrapper's memory only with a job's process of the wrapper's own uid
  // (root, here: a job with no account); one that switches to another account is forked.
  const ways = [
    { how: 'created sharing its wrapper’s memory (root)', isolation: undefined, account: undefined },
    { how: 'forked (another uid than its wrapper’s)', isolation: undefined, account: NOBODY },
    { how: 'forked (namespaces, no PID namespace)', isolation: { network: 'none' }, account: NOBODY },
    { how: 'forked by its PID namespace’s pid 1', isolation: { pid: true }, account: NOBODY },
  ];
  for (const { how, isolation, account } of ways) {
    it(`its process (${how}) cannot join its parent's group, and a stop without force ends it`, async () => {
      // Tries to move into the group of its parent (the wrapper, or the namespace's pid 1).
      const script =
        '$| = 1; print setpgrp(0, getppid()) ? "joined\\n" : "refused: $!\\n"; print "ready\\n"; sleep 600';
      const spec = { command: 'perl', args: ['-e', script], cwd: '/', ...(isolation ? { isolation } : {}) };
      const job = await h.engine.untilStarted(
        (await h.engine.start(spec, { user: 'tester', ...(account ? { account } : {}) })).id,
      );
      const pid = job.process!.pid;
      try {
        const stdout = await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
        assert.equal(stdout, 'refused: Operation not permitted\nready\n');
        assert.equal(await sessionOf(pid), pid, 'the job leads its own session');
        await h.engine.stop(job.id, { user: 'tester' }, { graceMs: 10_000 });
        const done = await h.engine.waitFor(job.id, AbortSignal.timeout(20_000));
        assert.equal(done.status, 'stopped');
        assert.equal(done.stopForced, false, 'SIGTERM to its group reached it');
        assert.equal(done.exit?.signal, 'SIGTERM');
      } finally {
        // A job that did get away is out of the stop's reach: not left running after the test.
        if (isSameProcessAlive(job.process!)) process.kill(pid, 'SIGKILL');
      }
    });
  }
});
