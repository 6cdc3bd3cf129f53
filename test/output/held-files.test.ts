import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { HeldFiles } from '../../src/output/held-files.ts';
import { appendObserved } from '../../src/output/index-appender.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import { writeKeptWindow } from '../../src/output/retention.ts';
import { jobDir, openIn } from './output-helpers.ts';

const text = (events: Awaited<ReturnType<typeof readOutput>>['events']) =>
  events.map((e) => (e.type === 'data' ? `${e.stream}:${e.data.toString()}` : `truncated:${e.skippedBytes}`));

test('held files index and read a job as files opened each time do, on descriptors opened once', async (t) => {
  const dir = await jobDir(t);
  const held = new HeldFiles(dir, () => undefined);
  t.after(() => held.close());
  // Before the job made its files: nothing to hold, sizes of 0, no index made.
  assert.deepEqual(held.sizes(), { stdout: 0, stderr: 0 });
  assert.deepEqual(await held.append(held.sizes()), { grew: false, observed: { stdout: 0, stderr: 0 } });
  assert.deepEqual(openIn(dir), []);

  await writeFile(join(dir, 'stdout'), 'one\n');
  await writeFile(join(dir, 'stderr'), '');
  assert.deepEqual(await held.append(held.sizes()), { grew: true, observed: { stdout: 4, stderr: 0 } });
  await appendFile(join(dir, 'stderr'), 'two\n');
  await held.append(held.sizes());
  await appendFile(join(dir, 'stdout'), 'three\n');
  assert.deepEqual(held.sizes(), { stdout: 10, stderr: 4 });
  await held.append(held.sizes());
  assert.deepEqual(openIn(dir), ['combined.idx', 'stderr', 'stdout'], 'one descriptor per file');

  const page = { selector: 'all', cursor: 0, limitBytes: 1024 } as const;
  const throughHeld = await readOutput(dir, page, held.files);
  assert.deepEqual(text(throughHeld.events), ['stdout:one\n', 'stderr:two\n', 'stdout:three\n']);
  assert.deepEqual(throughHeld, await readOutput(dir, page), 'the same read as through files of its own');
  assert.deepEqual(openIn(dir), ['combined.idx', 'stderr', 'stdout'], "the reader's close left them open");

  // The index as appendObserved makes it, record for record.
  const other = await jobDir(t);
  for (const sizes of [
    { stdout: 4, stderr: 0 },
    { stdout: 4, stderr: 4 },
    { stdout: 10, stderr: 4 },
  ]) {
    await appendObserved(join(other, 'combined.idx'), sizes);
  }
  assert.deepEqual(await readFile(join(dir, 'combined.idx')), await readFile(join(other, 'combined.idx')));

  held.close();
  assert.deepEqual(openIn(dir), [], 'closed');
  assert.throws(() => held.lease(), /closed/);
});

test('a close while a lease is out waits for it, so that no read loses its descriptor half-way', async (t) => {
  const dir = await jobDir(t);
  await writeFile(join(dir, 'stdout'), 'kept open\n');
  const held = new HeldFiles(dir, () => undefined);
  const release = held.lease();
  const file = await held.files.open(join(dir, 'stdout'));
  held.close();
  assert.equal(held.closed, true);
  assert.deepEqual(openIn(dir), ['stdout'], 'still open for the lease');
  const into = Buffer.alloc(4);
  assert.equal((await file.read(into, 0, 4, 0)).bytesRead, 4);
  assert.equal(into.toString(), 'kept');
  release();
  release(); // a second return is a no-op, not a second count
  assert.deepEqual(openIn(dir), []);
  await assert.rejects(held.files.open(join(dir, 'stdout')), /closed/);
});

test("the kept window is the enforcer's once it has one, else kept.json as read once", async (t) => {
  const dir = await jobDir(t);
  await writeFile(join(dir, 'stdout'), 'x'.repeat(8192));
  await writeKeptWindow(dir, { stdout: 4096, stderr: 0 });
  let enforcer: { stdout: number; stderr: number } | undefined;
  const held = new HeldFiles(dir, () => enforcer);
  t.after(() => held.close());
  const page = { selector: 'stdout', cursor: 0, limitBytes: 16384 } as const;
  // From a past server's retention: the reader sees the marker, not the zeros of a punched hole.
  assert.deepEqual(text((await readOutput(dir, page, held.files)).events), [
    'truncated:4096',
    `stdout:${'x'.repeat(4096)}`,
  ]);
  // Read once: kept.json is not read again (only the monitor moves it, through the enforcer).
  await writeKeptWindow(dir, { stdout: 8192, stderr: 0 });
  assert.deepEqual(await held.files.keptWindow(dir), { stdout: 4096, stderr: 0 });
  enforcer = { stdout: 8192, stderr: 0 };
  assert.deepEqual(text((await readOutput(dir, page, held.files)).events), ['truncated:8192']);
});

test('an index that cannot be opened fails the append, and the next one, once it can, indexes every byte', async (t) => {
  const dir = await jobDir(t);
  await writeFile(join(dir, 'stdout'), 'late\n');
  const index = join(dir, 'combined.idx');
  // Its name taken by a directory: the open fails (EISDIR).
  await mkdir(index);
  const held = new HeldFiles(dir, () => undefined);
  t.after(() => held.close());
  await assert.rejects(held.append(held.sizes()), /EISDIR|illegal operation on a directory/);
  await rm(index, { recursive: true });
  assert.deepEqual(await held.append(held.sizes()), { grew: true, observed: { stdout: 5, stderr: 0 } });
  const read = await readOutput(dir, { selector: 'all', cursor: 0, limitBytes: 64 });
  assert.deepEqual(text(read.events), ['stdout:late\n']);
});

test('an append that fails lets go of the index: the next one opens it again, reads its end and indexes every byte', async (t) => {
  const dir = await jobDir(t);
  await writeFile(join(dir, 'stdout'), 'one\n');
  const held = new HeldFiles(dir, () => undefined);
  t.after(() => held.close());
  await held.append(held.sizes());
  // The held index's descriptor goes bad: its number now names /dev/null, read-only, so its writes
  // fail EBADF. (Taken at once by a file of the test's own, the number is never another's.)
  const index = await held.files.open(join(dir, 'combined.idx'));
  closeSync(index.fd);
  assert.equal(openSync('/dev/null', 'r'), index.fd, 'the lowest free number: the one just closed');
  await appendFile(join(dir, 'stdout'), 'two\n');
  await assert.rejects(held.append(held.sizes()), /EBADF/);
  assert.deepEqual(openIn(dir), ['stdout'], 'the bad descriptor was let go of');
  assert.deepEqual(await held.append(held.sizes()), { grew: true, observed: { stdout: 8, stderr: 0 } });
  assert.deepEqual(openIn(dir), ['combined.idx', 'stdout']);
  const read = await readOutput(dir, { selector: 'all', cursor: 0, limitBytes: 64 });
  assert.deepEqual(text(read.events), ['stdout:one\ntwo\n']);
});
