import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { grantRealtime } from '../../src/runtime/cgroups.ts';

// A v1 cpu hierarchy's files as the kernel shows them: plain files stand in for them, so that
// every case runs on any host (this one's kernel may have no real-time group scheduling).
const root = mkdtempSync(join(tmpdir(), 'jw-rt-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A parent holding `parent` µs with children holding theirs; returns jobworker's directory. */
function hierarchy(parent: string, children: Record<string, string>): string {
  const dir = mkdtempSync(join(root, 'cpu-'));
  writeFileSync(join(dir, 'cpu.rt_runtime_us'), parent);
  for (const [name, runtime] of Object.entries(children)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'cpu.rt_runtime_us'), runtime);
  }
  return join(dir, 'jobworker');
}
const runtimeOf = (dir: string) => readFileSync(join(dir, 'cpu.rt_runtime_us'), 'utf8');

describe("real-time time for the jobs' CPU group (v1 cpu.rt_runtime_us)", () => {
  it('gives a group that has none what its parent has and no sibling holds', () => {
    const dir = hierarchy('950000\n', { jobworker: '0\n', media: '200000\n', other: '0\n' });
    grantRealtime(dir);
    assert.equal(runtimeOf(dir), '750000');
  });

  it("never changes a group's time once it has some: an administrator's choice stands", () => {
    const dir = hierarchy('950000\n', { jobworker: '100000\n' });
    grantRealtime(dir);
    assert.equal(runtimeOf(dir), '100000\n');
  });

  it('gives nothing when the siblings hold it all, or the parent has none to give', () => {
    for (const [parent, sibling] of [
      ['950000\n', '950000\n'],
      ['0\n', '0\n'],
      ['-1\n', '0\n'],
    ] as const) {
      const dir = hierarchy(parent, { jobworker: '0\n', other: sibling });
      grantRealtime(dir);
      assert.equal(runtimeOf(dir), '0\n', `parent ${parent.trim()}, sibling ${sibling.trim()}`);
    }
  });

  it('does nothing on a kernel without real-time group scheduling (no such file)', () => {
    const dir = mkdtempSync(join(root, 'plain-'));
    assert.doesNotThrow(() => grantRealtime(dir));
  });
});
