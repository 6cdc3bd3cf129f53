import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { outputPaths } from '../../src/output/output-files.ts';
import { readKeptWindow, retentionSlack, writeKeptWindow } from '../../src/output/retention.ts';
import { newJobRetention, RetentionEnforcer } from '../../src/output/retention-enforcer.ts';

const MiB = 1024 * 1024;
const CAP = MiB;
const MOST = CAP + retentionSlack(CAP);

describe('RetentionEnforcer.advance', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'jw-retention-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('leaves a job within the cap alone: no kept window written', async () => {
    const dir = await mkdtemp(join(root, 'job-'));
    const enforcer = new RetentionEnforcer(CAP, 'fallocate');
    const state = newJobRetention();
    await enforcer.advance(dir, { stdout: MOST, stderr: 10 }, state);
    assert.deepEqual(state.kept, { stdout: 0, stderr: 0 });
    assert.equal(existsSync(outputPaths(dir).kept), false);
    // Past the cap: the window moves, and is on disk before any punch.
    await enforcer.advance(dir, { stdout: MOST + 5 * MiB, stderr: 10 }, state);
    assert.deepEqual(await readKeptWindow(dir), state.kept);
    assert.ok(state.kept!.stdout > 0 && state.kept!.stdout <= 5 * MiB + MOST - CAP);
    assert.equal(state.kept!.stderr, 0);
  });

  it('a job that dropped before a restart starts from its kept window, and punches it again', async () => {
    const dir = await mkdtemp(join(root, 'job-'));
    await writeKeptWindow(dir, { stdout: 64 * 1024, stderr: 0 });
    const enforcer = new RetentionEnforcer(2 * CAP, 'fallocate');
    const state = newJobRetention();
    // Within a cap raised across the restart: the window stays, and what it hides is punched once more.
    await writeFile(outputPaths(dir).stdout, Buffer.alloc(128 * 1024, 0x41));
    await enforcer.advance(dir, { stdout: 128 * 1024, stderr: 0 }, state);
    assert.deepEqual(state.kept, { stdout: 64 * 1024, stderr: 0 });
    await enforcer.punch(dir, state);
    assert.equal(state.punched.stdout, 64 * 1024);
  });

  it('a job that dropped before a restart keeps its window when it grows past the cap', async () => {
    const dir = await mkdtemp(join(root, 'job-'));
    await writeKeptWindow(dir, { stdout: 0, stderr: 5 * MiB });
    const enforcer = new RetentionEnforcer(CAP, 'fallocate');
    const state = newJobRetention();
    // stderr within the cap of its kept start, stdout far past it: stderr's window must not move
    // back to what its size alone would give (5 MiB + 64 KiB - 1 MiB).
    await enforcer.advance(dir, { stdout: 8 * MiB, stderr: 5 * MiB + 64 * 1024 }, state);
    assert.equal(state.kept?.stderr, 5 * MiB);
    assert.ok(state.kept!.stdout >= 8 * MiB - MOST);
    assert.deepEqual(await readKeptWindow(dir), state.kept);
  });
});
