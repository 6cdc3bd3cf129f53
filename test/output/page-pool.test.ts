import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PagePool } from '../../src/output/page-pool.ts';

test('a page is never handed out twice: a second give of it is ignored', () => {
  const pool = new PagePool(4096, 4);
  const page = pool.take();
  assert.equal(page.length, 4096);
  assert.equal(pool.give(page), true);
  assert.equal(pool.give(page), false, 'given back twice');
  assert.equal(pool.idle, 1);
  const first = pool.take();
  const second = pool.take();
  assert.equal(first, page, 'the idle page is reused');
  assert.notEqual(second, first);
  assert.equal(pool.idle, 0);
});

test('a buffer the pool did not hand out is refused, and idle pages are bounded', () => {
  const pool = new PagePool(1024, 2);
  assert.equal(pool.give(Buffer.alloc(1024)), false);
  const pages = [pool.take(), pool.take(), pool.take()];
  assert.equal(new Set(pages).size, 3);
  for (const page of pages) assert.equal(pool.give(page), true);
  assert.equal(pool.idle, 2, 'the third page is left to the collector');
});

test('a page size must be a positive integer', () => {
  assert.throws(() => new PagePool(0, 1), /Expected `pageBytes` to be a positive integer, got 0/);
});
