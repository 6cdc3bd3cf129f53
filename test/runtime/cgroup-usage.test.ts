import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readUsage } from '../../src/runtime/cgroup-usage.ts';

test("usage reads the files of the v2 cgroup's enabled controllers only", async (t) => {
  // A directory laid out as a v2 cgroup's files are (cgroupfs itself cannot be written to this way).
  const dir = await mkdtemp(join(tmpdir(), 'jobworker-usage-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'cpu.stat'), 'usage_usec 2500000\nthrottled_usec 500000\n');
  await writeFile(join(dir, 'memory.events'), 'low 0\noom_kill 1\n');
  await writeFile(join(dir, 'memory.peak'), '1048576\n');
  await writeFile(join(dir, 'io.stat'), '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n');
  await writeFile(join(dir, 'pids.events'), 'max 3\n');

  const all = readUsage({ v2: dir, v2Controllers: new Set(['memory', 'io', 'pids']), v1: new Map() });
  assert.deepEqual(all, {
    cpuSeconds: 2.5,
    cpuThrottledSeconds: 0.5,
    memoryPeakBytes: 1048576,
    ioReadBytes: 4096,
    ioWriteBytes: 8192,
    oomKills: 1,
    pidsLimitHits: 3,
  });
  // Unset: every file is looked for, as for a cgroup whose controllers are not known.
  assert.deepEqual(readUsage({ v2: dir, v1: new Map() }), all);

  // Controllers not enabled: their figures are unknown (null), their counts 0; cpu.stat is core.
  assert.deepEqual(readUsage({ v2: dir, v2Controllers: new Set(), v1: new Map() }), {
    cpuSeconds: 2.5,
    cpuThrottledSeconds: 0.5,
    memoryPeakBytes: null,
    ioReadBytes: null,
    ioWriteBytes: null,
    oomKills: 0,
    pidsLimitHits: 0,
  });
});
