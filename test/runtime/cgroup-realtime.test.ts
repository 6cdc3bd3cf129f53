import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { grantRealtime } from '../../src/runtime/cgroups.ts';

// A v1 cpu hierarchy's files as the kernel shows them: plain files stand in for them, so that
// every case runs on any host (this one's kernel may have no real-time group scheduling).
const root = mkdtempSync(join(tmpdir(), 'jw-rt-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A parent holding `parent` µs with children holding theirs; returns jobworker's directory. */
function hierarchy(
  parent: string,
  children: Record<string, string>,
  periods: Record<string, string> = {},
): string {
  const dir = mkdtempSync(join(root, 'cpu-'));
  writeFileSync(join(dir, 'cpu.rt_runtime_us'), parent);
  writeFileSync(join(dir, 'cpu.rt_period_us'), '1000000\n');
  for (const [name, runtime] of Object.entries(children)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'cpu.rt_runtime_us'), runtime);
    writeFileSync(join(dir, name, 'cpu.rt_period_us'), periods[name] ?? '1000000\n');
  }
  return join(dir, 'jobworker');
}
const runtimeOf = (dir: string) => readFileSync(join(dir, 'cpu.rt_runtime_us'), 'utf8');

describe("real-time time for the jobs' CPU group (v1 cpu.rt_runtime_us)", () => {
  it('gives a group that has none what its parent has and no sibling holds', () => {
    const dir = hierarchy('950000\n', { jobworker: '0\n', media: '200000\n', other: '0\n' });
    assert.equal(grantRealtime(dir), undefined);
    assert.equal(runtimeOf(dir), '750000');
  });

  it('weighs each group by its own period, as the kernel does', () => {
    // media holds 100 ms of every 500 ms: a fifth, as 200,000 of 1,000,000 would.
    const dir = hierarchy('950000\n', { jobworker: '0\n', media: '100000\n' }, { media: '500000\n' });
    grantRealtime(dir);
    assert.equal(runtimeOf(dir), '750000');
    const halfPeriod = hierarchy('950000\n', { jobworker: '0\n' }, { jobworker: '500000\n' });
    grantRealtime(halfPeriod);
    assert.equal(runtimeOf(halfPeriod), '475000');
  });

  it("never changes a group's time once it has some: an administrator's choice stands", () => {
    const dir = hierarchy('950000\n', { jobworker: '100000\n' });
    grantRealtime(dir);
    assert.equal(runtimeOf(dir), '100000\n');
  });

  it('gives nothing when the siblings hold it all or one has no limit (and says why), or the parent has none', () => {
    for (const [parent, sibling, why] of [
      ['950000\n', '950000\n', "its siblings hold all of its parent's"],
      ['950000\n', '-1\n', 'other beside it has no limit'],
      ['0\n', '0\n', undefined],
      ['-1\n', '0\n', undefined],
    ] as const) {
      const dir = hierarchy(parent, { jobworker: '0\n', other: sibling });
      assert.equal(grantRealtime(dir), why);
      assert.equal(runtimeOf(dir), '0\n', `parent ${parent.trim()}, sibling ${sibling.trim()}`);
    }
  });

  it('does nothing on a kernel without real-time group scheduling (no such file)', () => {
    const dir = mkdtempSync(join(root, 'plain-'));
    assert.equal(grantRealtime(dir), undefined);
    assert.deepEqual(readdirSync(dir), [], 'nothing written');
  });
});
