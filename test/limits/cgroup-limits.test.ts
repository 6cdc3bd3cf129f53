import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ioDeviceFor } from '../../src/runtime/block-device.ts';
import { readCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';

/**
 * The files a job's limits become, read back from the real cgroups, and a creation that fails
 * half-way leaving nothing behind.
 */

const NAME = 'jobworker-limits-test';
const cgroups = new Cgroups({ name: NAME });
const MiB = 1024 * 1024;

describe('cgroup files of a job with limits', { skip: cgroups.mode === 'none' && 'no cgroups here' }, () => {
  const made: string[][] = [];
  after(() => {
    for (const dirs of made) cgroups.remove(dirs);
  });

  it('writes every limit to the hierarchy that has its controller, and reads usage back', async () => {
    const id = `files-${process.pid}-${Date.now()}`;
    const dirs = await cgroups.create(
      id,
      { cpu: 0.25, memory: 64 * MiB, pids: 32, io: { writeBps: 5 * MiB, readIops: 100 } },
      tmpdir(),
    );
    made.push(dirs);
    const file = (name: string) => {
      const dir = dirs.find((d) => existsSync(join(d, name)));
      return dir === undefined ? undefined : readFileSync(join(dir, name), 'utf8').trim();
    };
    // Each limit is in its v2 file or its v1 one, whichever hierarchy has the controller.
    const cpu = file('cpu.max') ?? file('cpu.cfs_quota_us');
    assert.ok(cpu === '25000 100000' || cpu === '25000', `cpu ${cpu}`);
    const memory = file('memory.max') ?? file('memory.limit_in_bytes');
    assert.equal(memory, String(64 * MiB));
    assert.equal(file('pids.max'), '32');
    let disk: string | undefined;
    try {
      disk = ioDeviceFor(undefined, tmpdir());
    } catch {
      // tmpdir on no block device: no IO files to read back (creation would have thrown)
    }
    if (disk) {
      const io = file('io.max') ?? file('blkio.throttle.write_bps_device');
      assert.ok(io?.includes(`${disk} `), `io ${io}`);
      assert.ok(io?.includes(String(5 * MiB)), `io ${io}`);
    }
    const usage = cgroups.usage(dirs);
    assert.equal(usage.oomKills, 0);
    assert.equal(usage.pidsLimitHits, 0);
    assert.equal(usage.cpuSeconds === null || usage.cpuSeconds === 0, true);
    cgroups.remove(dirs);
    for (const dir of dirs) assert.equal(existsSync(dir), false, dir);
  });

  it('removes what it made when a cgroup cannot be made half-way, and throws', async () => {
    const mounts = readCgroupMounts();
    // A pids "hierarchy" in a temporary directory, where the job's cgroup exists already: the
    // last mkdir fails after the real cgroups before it were made.
    const fake = await mkdtemp(join(tmpdir(), 'jw-fake-pids-'));
    try {
      await mkdir(join(fake, NAME), { recursive: true });
      writeFileSync(join(fake, NAME, 'cgroup.procs'), '');
      const id = `half-${process.pid}-${Date.now()}`;
      await mkdir(join(fake, NAME, id));
      const v1 = new Map(mounts.v1);
      v1.set('pids', fake);
      const broken = new Cgroups({ name: NAME, mounts: { v2: mounts.v2, v1 } });
      await assert.rejects(broken.create(id, { pids: 10 }, tmpdir()), { code: 'EEXIST' });
      // Only the directory that was there before is left.
      assert.deepEqual(broken.existing(id), [join(fake, NAME, id)]);
      assert.deepEqual(cgroups.existing(id), []);
    } finally {
      await rm(fake, { recursive: true, force: true });
    }
  });
});
