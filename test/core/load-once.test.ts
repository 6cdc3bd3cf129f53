import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadOnce } from '../../src/core/load-once.ts';

describe('loadOnce', () => {
  it('loads at the first call only, and every call shares that load', async () => {
    let loads = 0;
    const load = loadOnce(async () => ++loads);
    assert.equal(loads, 0, 'nothing loads before the first call');
    const [a, b] = await Promise.all([load(), load()]);
    assert.deepEqual([a, b, await load(), loads], [1, 1, 1, 1]);
  });

  it('does not keep a failure: the next call loads again', async () => {
    let loads = 0;
    const load = loadOnce(async () => {
      loads++;
      if (loads === 1) throw new Error('not yet');
      return 'loaded';
    });
    await assert.rejects(load(), /not yet/);
    assert.equal(await load(), 'loaded');
    assert.equal(await load(), 'loaded');
    assert.equal(loads, 2);
  });
});
