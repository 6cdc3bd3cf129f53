import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobListeners } from '../../src/engine/job-listeners.ts';
import type { OutputSelector } from '../../src/output/output-types.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

const me = { user: 'tester' };

describe('JobListeners', () => {
  it('tells only the listeners of the job named', () => {
    const listeners = new JobListeners<number>();
    const seen: string[] = [];
    listeners.add('a', (n) => seen.push(`a1:${n}`));
    listeners.add('a', (n) => seen.push(`a2:${n}`));
    listeners.add('b', (n) => seen.push(`b:${n}`));
    listeners.notify('a', 1);
    listeners.notify('c', 2);
    assert.deepEqual(seen, ['a1:1', 'a2:1']);
    assert.equal(listeners.count('a'), 2);
    assert.equal(listeners.count(), 3);
  });

  it('removal is idempotent and forgets a job with no listener left', () => {
    const listeners = new JobListeners<number>();
    const remove = listeners.add('a', () => {});
    const other = listeners.add('a', () => {});
    remove();
    remove();
    assert.equal(listeners.count('a'), 1);
    other();
    assert.equal(listeners.count(), 0);
    // A listener added after the job was forgotten starts a new set, and is told.
    let told = 0;
    listeners.add('a', () => told++);
    listeners.notify('a', 0);
    assert.equal(told, 1);
  });

  it('a listener that removes itself during a notice does not skip the next one', () => {
    const listeners = new JobListeners<number>();
    const seen: string[] = [];
    const remove = listeners.add('a', () => {
      seen.push('first');
      remove();
    });
    listeners.add('a', () => seen.push('second'));
    listeners.notify('a', 0);
    listeners.notify('a', 0);
    assert.deepEqual(seen, ['first', 'second', 'second']);
  });
});

describe('engine progress listeners of followers', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('a follower listens to its own job only, and its listener goes when it is aborted', async () => {
    const job = await h.engine.start({ command: 'sh', args: ['-c', 'echo ready; exec sleep 30'] }, me);
    const controller = new AbortController();
    const follow = h.engine.follow(job.id, {
      selector: 'all',
      cursor: 0,
      signal: controller.signal,
      progress: true,
    });
    const first = await follow.next();
    assert.equal(first.value?.type, 'output');
    assert.equal(h.engine.progressListenerCount(job.id), 1);
    assert.equal(h.engine.listenerCount('job:progress'), 0, 'no listener on the shared emitter');
    const rest = follow.next();
    controller.abort();
    await rest;
    assert.equal(h.engine.progressListenerCount(), 0);
    await h.engine.stop(job.id, me);
    await h.engine.waitFor(job.id);
  });

  it('a follow that fails (its read throws) removes its listener too', async () => {
    const job = await h.engine.start({ command: 'sleep', args: ['30'] }, me);
    const follow = h.engine.follow(job.id, {
      selector: 'bogus' as OutputSelector,
      cursor: 0,
      progress: true,
    });
    await assert.rejects(follow.next(), { code: 'VALIDATION_FAILED' });
    assert.equal(h.engine.progressListenerCount(), 0);
    await h.engine.stop(job.id, me);
    await h.engine.waitFor(job.id);
  });
});
