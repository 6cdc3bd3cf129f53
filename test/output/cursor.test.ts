import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CursorError } from '../../src/core/errors.ts';
import { formatCursor, parseCursor } from '../../src/output/cursor.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import { jobDir, startJob } from './output-helpers.ts';

test('parseCursor accepts non-negative safe integers in decimal', () => {
  assert.equal(parseCursor('0'), 0);
  assert.equal(parseCursor('42'), 42);
  assert.equal(parseCursor('007'), 7);
  assert.equal(parseCursor(String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  assert.equal(parseCursor(formatCursor(123456789)), 123456789);
});

test('parseCursor rejects anything else with a CursorError', () => {
  const bad = [
    undefined,
    '',
    ' ',
    '-1',
    '+1',
    '1.5',
    '1e3',
    '0x10',
    'abc',
    ' 1',
    '1 ',
    '9007199254740992',
    '١٢',
  ];
  for (const text of bad) {
    assert.throws(
      () => parseCursor(text),
      (err: unknown) => err instanceof CursorError && err.code === 'BAD_CURSOR' && err.field === 'cursor',
      String(text),
    );
  }
  assert.throws(() => parseCursor('-1'), {
    message: 'Expected `cursor` to be a non-negative integer in decimal, got `-1`',
  });
});

test('readOutput rejects negative, fractional and past-the-end cursors in every view', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'printf abc; printf de >&2']);
  await job.exited;
  await new OutputMonitor({ capBytes: 1024 }).finish('bad-cursors', dir);
  const ends = { stdout: 3, stderr: 2, all: 5 } as const;
  for (const [selector, end] of Object.entries(ends) as [keyof typeof ends, number][]) {
    const read = (cursor: number) => readOutput(dir, { selector, cursor, limitBytes: 10 });
    assert.equal((await read(end)).events.length, 0);
    await assert.rejects(read(end + 1), CursorError);
    await assert.rejects(read(-1), CursorError);
    await assert.rejects(read(0.5), CursorError);
    await assert.rejects(read(Number.NaN), CursorError);
  }
  await assert.rejects(readOutput(dir, { selector: 'stdout', cursor: 0, limitBytes: 0 }), {
    code: 'VALIDATION_FAILED',
  });
});
