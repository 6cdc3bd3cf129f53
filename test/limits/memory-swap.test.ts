import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/core/errors.ts';
import { parseCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { hostHasSwap } from '../../src/runtime/host-swap.ts';
import { FakeCgroupHost } from '../helpers/fake-cgroups.ts';

/**
 * A memory limit caps swap at 0 too, so that a job over it is stopped, not swapped out
 * (docs/isolation.md, "Memory and swap"). Where the kernel keeps no swap accounting there is no
 * such cap: on a host with swap the limit is refused at submit; on one without, it is exact. The
 * development machine has swap accounting and no swap, so the other hosts are fakes
 * (test/helpers/fake-cgroups.ts) with a meminfo file of their own.
 */

const MiB = 1024 * 1024;
const meminfo = (swapKiB: number) =>
  `MemTotal:        8039920 kB\nSwapTotal:    ${swapKiB} kB\nSwapFree:    ${swapKiB} kB\n`;

describe('a memory limit where swap cannot be capped', () => {
  it('tells a host with swap from one without, by SwapTotal', () => {
    const host = new FakeCgroupHost('unused');
    try {
      const file = join(host.root, 'meminfo');
      writeFileSync(file, meminfo(2097148));
      assert.equal(hostHasSwap(file), true);
      writeFileSync(file, meminfo(0));
      assert.equal(hostHasSwap(file), false);
      // Not known to have none: taken for swap, so a limit is refused rather than left open.
      assert.equal(hostHasSwap(join(host.root, 'missing')), true);
    } finally {
      host.remove();
    }
  });

  for (const kind of ['v1', 'v2'] as const) {
    it(`${kind} without swap accounting: refused on \`limits.memory\` where the host has swap, taken where it has none`, async () => {
      const name = 'jobworker-swap-test';
      const host = new FakeCgroupHost(name);
      try {
        host.mount('freezer', ['freezer']);
        // v1: memory.limit_in_bytes but no memory.memsw.* (swapaccount=0); v2: memory but no memory.swap.max.
        const ours =
          kind === 'v1'
            ? host.mount('memory', ['memory'], { 'memory.limit_in_bytes': '' })
            : host.mount('unified', 'cgroup2', {
                'cgroup.controllers': 'memory',
                'cgroup.subtree_control': '',
              });
        const file = join(host.root, 'meminfo');
        const cgroups = new Cgroups({
          name,
          mode: kind,
          mounts: parseCgroupMounts(host.mountinfo),
          meminfo: file,
        });
        assert.equal(cgroups.mode, kind);

        writeFileSync(file, meminfo(2097148));
        // Before: taken, and the job swapped past its limit instead of being stopped.
        assert.throws(
          () => cgroups.checkLimits({ memory: 64 * MiB }, tmpdir()),
          (err: unknown) =>
            err instanceof ValidationError &&
            err.field === 'limits.memory' &&
            /has swap but no cgroup swap accounting/.test(err.message) &&
            /swapaccount=1/.test(err.message),
        );
        // Asked for, swap is refused as before, on its own field.
        assert.throws(() => cgroups.checkLimits({ memory: 64 * MiB, memorySwap: 0 }, tmpdir()), {
          field: 'limits.memorySwap',
        });

        // No swap on the host: the memory limit alone is exact.
        writeFileSync(file, meminfo(0));
        cgroups.checkLimits({ memory: 64 * MiB }, tmpdir());
        const dirs = await cgroups.create(`swap-${process.pid}`, { memory: 64 * MiB }, tmpdir());
        const memoryDir = dirs.find((d) => d.startsWith(`${ours}/`))!;
        const limitFile = kind === 'v1' ? 'memory.limit_in_bytes' : 'memory.max';
        assert.equal(readFileSync(join(memoryDir, limitFile), 'utf8'), String(64 * MiB));
      } finally {
        host.remove();
      }
    });
  }

  it('with swap accounting, a memory limit is taken on a host with swap (swap is capped at 0 beside it)', () => {
    const name = 'jobworker-swap-test';
    const host = new FakeCgroupHost(name);
    try {
      host.mount('freezer', ['freezer']);
      host.mount('memory', ['memory'], { 'memory.memsw.limit_in_bytes': '' });
      const file = join(host.root, 'meminfo');
      writeFileSync(file, meminfo(2097148));
      const cgroups = new Cgroups({
        name,
        mode: 'v1',
        mounts: parseCgroupMounts(host.mountinfo),
        meminfo: file,
      });
      cgroups.checkLimits({ memory: 64 * MiB }, tmpdir());
      cgroups.checkLimits({ memory: 64 * MiB, memorySwap: 16 * MiB }, tmpdir());
    } finally {
      host.remove();
    }
  });
});
