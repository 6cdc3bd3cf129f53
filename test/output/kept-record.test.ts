import assert from 'node:assert/strict';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { KEPT_FILE_BYTES } from '../../src/output/kept-record.ts';
import { readKeptWindow, readKeptWindowSync, writeKeptWindow } from '../../src/output/retention.ts';
import { jobDir } from './output-helpers.ts';

const keptPath = (dir: string) => join(dir, 'kept.json');

test('the kept window moves in place: made once, then its slots are overwritten', async (t) => {
  const dir = await jobDir(t);
  // No file: nothing was dropped yet.
  assert.deepEqual(await readKeptWindow(dir), { stdout: 0, stderr: 0 });

  await writeKeptWindow(dir, { stdout: 4096, stderr: 0 });
  const first = await stat(keptPath(dir));
  assert.equal(first.size, KEPT_FILE_BYTES);
  for (const [i, kept] of [
    { stdout: 8192, stderr: 0 },
    { stdout: 8192, stderr: 4096 },
    { stdout: 12288, stderr: 4096 },
  ].entries()) {
    await writeKeptWindow(dir, kept);
    assert.deepEqual(await readKeptWindow(dir), kept, `move ${i + 2}`);
    assert.deepEqual(readKeptWindowSync(dir), kept);
    const now = await stat(keptPath(dir));
    assert.equal(now.ino, first.ino, 'the same file');
    assert.equal(now.size, KEPT_FILE_BYTES);
  }
});

test('a slot torn by a crash during a move leaves the window before it', async (t) => {
  const dir = await jobDir(t);
  await writeKeptWindow(dir, { stdout: 4096, stderr: 0 });
  const before = await readFile(keptPath(dir));
  await writeKeptWindow(dir, { stdout: 8192, stderr: 0 });
  const after = await readFile(keptPath(dir));
  // The move wrote one slot: every byte that changed lies in it.
  const changed = [...after.keys()].filter((i) => after[i] !== before[i]);
  assert.ok(changed.length > 0);
  const torn = changed.slice(0, Math.ceil(changed.length / 2));
  const file = await open(keptPath(dir), 'r+');
  try {
    // Half of the slot as the move wrote it, half as it was: its checksum fails.
    for (const i of changed.filter((i) => !torn.includes(i))) {
      await file.write(before.subarray(i, i + 1), 0, 1, i);
    }
  } finally {
    await file.close();
  }
  assert.deepEqual(await readKeptWindow(dir), { stdout: 4096, stderr: 0 });
  // The next move overwrites the torn slot, not the good one.
  await writeKeptWindow(dir, { stdout: 12288, stderr: 0 });
  assert.deepEqual(await readKeptWindow(dir), { stdout: 12288, stderr: 0 });
});

test("a past server's JSON is read, and the first move replaces it with the records", async (t) => {
  const dir = await jobDir(t);
  await writeFile(keptPath(dir), JSON.stringify({ stdout: 4096, stderr: 8192 }));
  assert.deepEqual(await readKeptWindow(dir), { stdout: 4096, stderr: 8192 });
  assert.deepEqual(readKeptWindowSync(dir), { stdout: 4096, stderr: 8192 });
  await writeKeptWindow(dir, { stdout: 16384, stderr: 8192 });
  assert.deepEqual(await readKeptWindow(dir), { stdout: 16384, stderr: 8192 });
  assert.equal((await stat(keptPath(dir))).size, KEPT_FILE_BYTES);
});

test('a kept file without a valid record is an error, not a window of zeros', async (t) => {
  const dir = await jobDir(t);
  await writeFile(keptPath(dir), Buffer.alloc(KEPT_FILE_BYTES, 7));
  await assert.rejects(readKeptWindow(dir), /kept\.json holds no valid kept window/);
  assert.throws(() => readKeptWindowSync(dir), /kept\.json holds no valid kept window/);
});

test('a window with where a truncated stream restarts (JWK2) moves in place, and a plain one stays JWK1', async (t) => {
  const dir = await jobDir(t);
  await writeKeptWindow(dir, { stdout: 4096, stderr: 0 });
  assert.deepEqual(
    await readKeptWindow(dir),
    { stdout: 4096, stderr: 0 },
    'no fileStart when none was written',
  );
  const first = await stat(keptPath(dir));
  const restarted = { stdout: 4096, stderr: 39, fileStart: { stdout: 0, stderr: 39 } };
  await writeKeptWindow(dir, restarted);
  assert.deepEqual(await readKeptWindow(dir), restarted);
  assert.deepEqual(readKeptWindowSync(dir), restarted);
  const moved = { stdout: 8192, stderr: 39, fileStart: { stdout: 0, stderr: 39 } };
  await writeKeptWindow(dir, moved);
  assert.deepEqual(await readKeptWindow(dir), moved);
  const now = await stat(keptPath(dir));
  assert.equal(now.ino, first.ino, 'the same file, overwritten in place');
  assert.ok(now.size <= 4096, 'within its first block');
});
