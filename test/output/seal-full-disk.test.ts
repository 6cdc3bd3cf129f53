import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openOutputFiles } from '../../src/output/output-files.ts';
import { followOutput } from '../../src/output/output-follower.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import type { OutputEvent } from '../../src/output/output-types.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { mountSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';
import { readAll } from './output-helpers.ts';

const text = (events: readonly OutputEvent[]) =>
  events.map((event) => (event.type === 'data' ? event.data.toString() : `[${event.type}]`)).join('');

describe('the seal of a job on a full disk', () => {
  let disk: SmallDisk;
  before(async () => {
    disk = await mountSmallDisk('4m');
  });
  after(() => disk.destroy());

  it('rejects while the index cannot take the last bytes, keeps followers waiting, and seals every byte once space returns', async () => {
    const dir = join(disk.dir, 'job');
    await mkdir(dir);
    const fds = await openOutputFiles(dir);
    closeSync(fds.stdout);
    closeSync(fds.stderr);
    const errors: Error[] = [];
    const monitor = new OutputMonitor({
      capBytes: 1024 * 1024 * 1024,
      clock: new ManualClock(),
      onError: (err) => errors.push(err),
    });
    try {
      monitor.watch('j', dir);
      await appendFile(join(dir, 'stdout'), 'working...\n');
      await appendFile(join(dir, 'stderr'), 'warning: low disk\n');
      // Something else fills the disk; the job's last words still fit in its stream file's page,
      // but the combined index (not made yet: nobody followed, no sweep came) has no block for them.
      await disk.fill();
      await appendFile(join(dir, 'stderr'), 'fatal: No space left on device\n');
      const events: OutputEvent[] = [];
      let followEnded = false;
      const follow = (async () => {
        for await (const batch of followOutput(monitor, dir, 'j', { selector: 'all', cursor: 0 })) {
          events.push(...batch);
        }
        followEnded = true;
      })();

      await assert.rejects(monitor.finish('j', dir), { code: 'ENOSPC' });
      // The follower's first observation failed the same way, and was told; the seal is told by
      // its caller, which retries it, not once per try by the monitor.
      assert.deepEqual(
        errors.map((err) => (err as NodeJS.ErrnoException).code),
        ['ENOSPC'],
      );
      assert.equal(monitor.isWatching('j'), true, 'still tracked: the next finish seals again');
      assert.equal(followEnded, false, 'no clean end with bytes missing');
      await assert.rejects(monitor.finish('j', dir), { code: 'ENOSPC' });
      assert.equal(errors.length, 1);

      await disk.free();
      assert.deepEqual(await monitor.finish('j', dir), { stdout: 11, stderr: 49 });
      assert.equal(monitor.isWatching('j'), false);
      await follow;
      const whole = 'working...\nwarning: low disk\nfatal: No space left on device\n';
      assert.equal(text(events), whole);
      assert.equal(text(await readAll(dir, 'all', 1 << 20)), whole);
    } finally {
      monitor.close();
    }
  });
});
