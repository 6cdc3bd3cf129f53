import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { FakeCgroupHost } from '../helpers/fake-cgroups.ts';

/**
 * Hosts whose v1 controllers share a hierarchy (`cpu,cpuacct` on RHEL/CentOS 7, Amazon Linux 2,
 * any systemd host in legacy mode). The development machine mounts each controller on its own, so
 * these run on a fake mount table and fake hierarchies (test/helpers/fake-cgroups.ts).
 */
describe('cgroup v1 controllers mounted together', () => {
  it('reads `cpu,cpuacct` as one hierarchy: both controllers at one mount point', () => {
    const mounts = parseCgroupMounts(
      [
        '25 22 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
        '26 22 0:23 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer',
        '27 22 0:24 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd',
      ].join('\n'),
    );
    assert.equal(mounts.v2, null);
    assert.equal(mounts.v1.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(mounts.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(mounts.v1.get('freezer'), '/sys/fs/cgroup/freezer');
    assert.equal(mounts.v1.has('systemd'), false);
  });

  it('a CPU-limited job on a pure v1 host with `cpu,cpuacct` starts: one cgroup for both, made once, listed once', async () => {
    const name = 'jobworker-comount-test';
    const host = new FakeCgroupHost(name);
    try {
      const freezer = host.mount('freezer', ['freezer']);
      const memory = host.mount('memory', ['memory']);
      const cpu = host.mount('cpu,cpuacct', ['cpu', 'cpuacct']);
      const blkio = host.mount('blkio', ['blkio']);
      host.mount('pids', ['pids']);
      const cgroups = new Cgroups({ name, mode: 'v1', mounts: parseCgroupMounts(host.mountinfo) });
      assert.equal(cgroups.mode, 'v1');
      const id = `comount-${process.pid}`;
      // Before: the cpu hierarchy's mkdir, then cpuacct's on the same path: EEXIST, the job failed to start.
      const dirs = await cgroups.create(id, { cpu: 0.5 }, tmpdir());
      assert.deepEqual(dirs, [join(freezer, id), join(memory, id), join(cpu, id), join(blkio, id)]);
      assert.equal(readFileSync(join(cpu, id, 'cpu.cfs_quota_us'), 'utf8'), '50000');
      // Found again once, and measured through it as cpuacct's (`cpuacct.usage`, in nanoseconds).
      assert.deepEqual(cgroups.existing(id).sort(), [...dirs].sort());
      writeFileSync(join(cpu, id, 'cpuacct.usage'), '1500000000\n');
      assert.equal(cgroups.usage(dirs).cpuSeconds, 1.5);
      // The spawner's CPU group is that hierarchy's directory too.
      assert.equal(cgroups.cpuGroupProcs, join(cpu, 'cgroup.procs'));
    } finally {
      host.remove();
    }
  });
});
