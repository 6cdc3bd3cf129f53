import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropBefore } from '../../src/output/drop-before.ts';
import type { OutputEvent } from '../../src/output/output-types.ts';

// A read from cursor 10 that raced a punch: it returned a marker up to 20, then bytes 20..30.
const raced: OutputEvent[] = [
  { type: 'truncated', stream: 'stdout', skippedBytes: 10, cursor: 20 },
  { type: 'data', stream: 'stdout', data: Buffer.from('0123456789'), cursor: 30 },
];

test('bytes a punch may have zeroed during a read become part of the one truncated marker', () => {
  assert.deepEqual(dropBefore(raced, 10, 24, 'stdout'), [
    { type: 'truncated', stream: 'stdout', skippedBytes: 14, cursor: 24 },
    { type: 'data', stream: 'stdout', data: Buffer.from('456789'), cursor: 30 },
  ]);
});

test('a window that moved past everything read truncates only what this read covered', () => {
  assert.deepEqual(dropBefore(raced, 10, 100, 'stdout'), [
    { type: 'truncated', stream: 'stdout', skippedBytes: 20, cursor: 30 },
  ]);
});

test('a window that stays before the cursor changes nothing', () => {
  assert.equal(dropBefore(raced, 10, 5, 'stdout'), raced);
  assert.deepEqual(dropBefore([], 10, 50, 'stderr'), []);
});
