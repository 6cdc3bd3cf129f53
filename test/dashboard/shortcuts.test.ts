import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { G_WINDOW_MS, GKeys } from '../../web/src/shortcuts.ts';

describe("the dashboard's two-key g moves", () => {
  it('moves to the page the second key names, within the window', () => {
    const keys = new GKeys();
    assert.deepEqual(keys.key('g', 1000), { swallowed: true });
    assert.deepEqual(keys.key('q', 1000 + G_WINDOW_MS), { page: 'queues' });
    for (const [second, page] of [
      ['j', 'jobs'],
      ['s', 'start'],
      ['u', 'users'],
      ['a', 'audit'],
    ] as const) {
      keys.key('g', 5000);
      assert.deepEqual(keys.key(second, 5001), { page });
    }
  });

  it('forgets a g after the window: the later key is itself', () => {
    const keys = new GKeys();
    keys.key('g', 1000);
    assert.deepEqual(keys.key('j', 1001 + G_WINDOW_MS), { key: 'j' });
    assert.deepEqual(keys.key('q', 1002 + G_WINDOW_MS), { key: 'q' }, 'and stays forgotten');
  });

  it('forgets a g when a key is typed in a field meanwhile', () => {
    const keys = new GKeys();
    keys.key('g', 1000);
    keys.typed();
    assert.deepEqual(keys.key('j', 1001), { key: 'j' });
  });

  it('takes a second key that names no page, and passes other keys on', () => {
    const keys = new GKeys();
    keys.key('g', 1000);
    assert.deepEqual(keys.key('?', 1001), { swallowed: true }, 'g ? is no help request');
    assert.deepEqual(keys.key('?', 1002), { key: '?' });
    assert.deepEqual(keys.key('/', 1003), { key: '/' });
    keys.key('g', 2000);
    assert.deepEqual(keys.key('g', 2001), { swallowed: true }, 'g g moves nowhere and starts no pair');
    assert.deepEqual(keys.key('j', 2002), { key: 'j' });
  });
});
