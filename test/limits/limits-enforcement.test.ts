import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { ioDeviceFor } from '../../src/runtime/block-device.ts';
import { type CgroupMode, Cgroups } from '../../src/runtime/cgroups.ts';
import { type Harness, openHarness, readAll, startRunning } from '../helpers/engine-harness.ts';
import { waitForFileText } from '../helpers/wait.ts';

/**
 * Limits enforced by real cgroups on this host (docs/isolation.md, "Limits"). Here that is a v2
 * hierarchy with no controllers enabled beside v1 `memory`, `cpu`, `cpuacct`, `blkio`, `pids`:
 * every limit goes through its v1 hierarchy; the memory test runs again with cgroups forced to
 * v1 only (tracking by the v1 freezer, CPU time from cpuacct), the other path that differs.
 */

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const NAME = 'jobworker-limits-test';
const MiB = 1024 * 1024;

const hostCgroups = new Cgroups({ name: NAME });
const noCgroups = hostCgroups.mode === 'none' ? 'this host gives jobworker no cgroups' : false;

/** Resolves once `check` holds, looking again at each turn of `every` ms; rejects after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('limits enforced by cgroups', { skip: noCgroups }, () => {
  let h: Harness;
  let work: string;
  const started: string[] = [];
  before(async () => {
    h = await openHarness({ cgroups: { name: NAME } });
    work = await mkdtemp(join(tmpdir(), 'jw-limits-'));
  });
  after(async () => {
    // Whatever a test left running (a failed assertion mid-way) is ended with its whole cgroup.
    for (const id of started) {
      const job = await h.engine.get(id);
      if (!['succeeded', 'failed', 'stopped', 'timed_out', 'cancelled', 'lost'].includes(job.status)) {
        await h.engine.stop(id, { user: 'cleanup' }, { graceMs: 0 });
        await h.engine.waitFor(id);
      }
    }
    await h.destroy();
    await rm(work, { recursive: true, force: true });
  });

  async function run(input: object): Promise<Job> {
    const job = await startRunning(h.engine, { cwd: work, ...input });
    started.push(job.id);
    return job;
  }

  for (const mode of ['host', 'v1'] as const) {
    const v1Only = mode === 'v1' && new Cgroups({ name: NAME, mode: 'v1' as CgroupMode }).mode !== 'v1';
    it(`a memory hog under 64M is OOM-killed and ends failed with the reason (${mode} cgroups)`, {
      skip: v1Only ? 'no v1 freezer hierarchy on this host' : false,
    }, async (t) => {
      const harness = mode === 'v1' ? await openHarness({ cgroups: { name: NAME, mode: 'v1' } }) : h;
      try {
        // Grows by 1 MiB at a time, for ever: only its limit stops it.
        const job = await startRunning(harness.engine, {
          command: 'perl',
          args: ['-e', 'my @hog; push @hog, "x" x 1048576 while 1'],
          cwd: work,
          limits: { memory: '64M' },
        });
        const end = await harness.engine.waitFor(job.id);
        assert.equal(end.status, 'failed');
        assert.equal(end.exit?.reason, 'out of memory (limit 64 MiB)');
        assert.equal(end.exit?.signal, 'SIGKILL');
        assert.ok(end.usage, 'usage recorded at the end');
        assert.ok(end.usage.oomKills >= 1);
        assert.ok(
          end.usage.memoryPeakBytes !== null && end.usage.memoryPeakBytes <= 64 * MiB,
          `${end.usage.memoryPeakBytes}`,
        );
        assert.ok(end.usage.memoryPeakBytes > 32 * MiB, `peak ${end.usage.memoryPeakBytes}`);
        assert.ok(end.usage.cpuSeconds !== null && end.usage.cpuSeconds > 0);
        t.diagnostic(`peak ${end.usage.memoryPeakBytes} bytes, ${end.usage.oomKills} OOM kill(s)`);
        // The server is untouched: alive, and running the next job as before.
        const next = await harness.engine.waitFor(
          (await harness.engine.start({ command: 'true', cwd: work }, { user: 't' })).id,
        );
        assert.equal(next.status, 'succeeded');
        // Stored: a fresh read from the database shows the same.
        const stored = await harness.store.getJob(job.id);
        assert.equal(stored?.usage?.oomKills, end.usage.oomKills);
      } finally {
        if (harness !== h) await harness.destroy();
      }
    });
  }

  it('a fork bomb under --pids 64 is contained, says it hit the limit, and is stopped', async (t) => {
    const job = await run({
      command: join(FIXTURES, 'fork-bomb.pl'),
      args: ['64'],
      // Spinning forks on a shared machine: a CPU cap keeps it from taking the others' cores.
      limits: { pids: 64, cpu: 0.5 },
      timeoutMs: 60_000,
    });
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'bounded by pids.max 64');
    const hit = await until('refused forks', async () => {
      const live = await h.engine.get(job.id);
      return live.usage && live.usage.pidsLimitHits > 0 ? live : undefined;
    });
    assert.equal(hit.status, 'running');
    const tracked = hostCgroups.pids(job.process?.cgroups ?? []);
    assert.ok(tracked.length <= 64, `${tracked.length} processes`);
    await h.engine.stop(job.id, { user: 'tester' }, { graceMs: 0 });
    const end = await h.engine.waitFor(job.id);
    assert.equal(end.status, 'stopped');
    assert.match(end.exit?.reason ?? '', /reached its pids limit \(64\): \d+ forks? refused/);
    assert.ok((end.usage?.pidsLimitHits ?? 0) > 0);
    t.diagnostic(`${tracked.length} processes at most seen; ${end.exit?.reason}`);
    // Nothing of it is left: its cgroups are gone with every process in them.
    for (const dir of job.process?.cgroups ?? []) assert.equal(existsSync(dir), false, dir);
  });

  it('a busy loop under --cpu 0.2 uses at most 25% of a core over 2 s of CPU periods (cpu.stat)', async (t) => {
    const job = await run({ command: 'perl', args: ['-e', '1 while 1'], limits: { cpu: 0.2 } });
    // The CFS periods the quota was enforced over, as the cgroup counts them: 20 are 2 s.
    const cpuStat = (job.process?.cgroups ?? [])
      .map((dir) => join(dir, 'cpu.stat'))
      .find((file) => existsSync(file) && readFileSync(file, 'utf8').includes('nr_periods'));
    assert.ok(cpuStat, 'a cgroup with a CPU quota');
    const periods = () => Number(/nr_periods (\d+)/.exec(readFileSync(cpuStat, 'utf8'))?.[1] ?? 0);
    const first = periods();
    const before = (await h.engine.get(job.id)).usage?.cpuSeconds ?? 0;
    const counted = await until('20 CPU periods', async () =>
      periods() >= first + 20 ? periods() : undefined,
    );
    const used = ((await h.engine.get(job.id)).usage?.cpuSeconds ?? 0) - before;
    const share = used / ((counted - first) * 0.1);
    assert.ok(
      share <= 0.25,
      `used ${used.toFixed(3)} s of CPU in ${counted - first} periods: ${(share * 100).toFixed(1)}%`,
    );
    assert.ok(share > 0.05, `the loop ran: ${(share * 100).toFixed(1)}%`);
    t.diagnostic(
      `${used.toFixed(3)} s of CPU over ${counted - first} periods: ${(share * 100).toFixed(1)}% of a core`,
    );
    await h.engine.stop(job.id, { user: 'tester' }, { graceMs: 0 });
    const end = await h.engine.waitFor(job.id);
    assert.equal(end.status, 'stopped');
    assert.ok((end.usage?.cpuThrottledSeconds ?? 0) > 0, 'it was throttled');
  });

  it('dd under --io-write 5M writes at most 6 MB/s to a file on a block device', async (t) => {
    try {
      ioDeviceFor(undefined, work);
      hostCgroups.checkLimits({ io: { writeBps: 5 * MiB } }, work);
    } catch (err) {
      t.skip(`IO limits cannot apply here: ${(err as Error).message}`);
      return;
    }
    const job = await run({
      command: 'dd',
      args: ['if=/dev/zero', `of=${join(work, 'dd.out')}`, 'bs=1M', 'count=12', 'oflag=direct'],
      limits: { io: { writeBps: '5M' } },
    });
    const end = await h.engine.waitFor(job.id);
    assert.equal(end.status, 'succeeded', end.exit?.reason);
    // dd's own account: "12582912 bytes (13 MB, 12 MiB) copied, 2.4 s, 5.2 MB/s".
    const stderr = (await readAll(h.engine, job.id, 'stderr')).toString();
    const match = /(\d+) bytes .* copied, ([\d.]+) s/.exec(stderr);
    assert.ok(match, stderr);
    const rate = Number(match[1]) / Number(match[2]);
    assert.ok(rate <= 6e6, `${(rate / 1e6).toFixed(2)} MB/s`);
    t.diagnostic(`dd wrote ${match[1]} bytes in ${match[2]} s: ${(rate / 1e6).toFixed(2)} MB/s`);
    assert.ok((end.usage?.ioWriteBytes ?? 0) >= 12 * MiB, `ioWriteBytes ${end.usage?.ioWriteBytes}`);
  });
});
