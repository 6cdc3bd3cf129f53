import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { TaskManager } from 'jobworker/tasks';

const GEN = new URL('./fixtures/gen-task.ts', import.meta.url);

describe('TaskManager: polling tasks whose run and poll block (submitPollingModule)', () => {
  const tm = new TaskManager({ pollInitialMs: 1, pollMaxMs: 4 });
  after(() => tm.close());

  it('runs them on the poller thread: the event loop goes on while run() blocks', async () => {
    const flag = new SharedArrayBuffer(4);
    const id = tm.submitPollingModule(GEN, 'makeBlockingPoller', 21, flag);
    // run() blocks its thread until released after 100 turns of this event loop.
    let turns = 0;
    await new Promise<void>((resolve) => {
      const turn = () => (++turns < 100 ? setImmediate(turn) : resolve());
      setImmediate(turn);
    });
    assert.equal(tm.get(id)?.status, 'running');
    assert.equal(tm.get(id)?.polls, 0);
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    const done = await tm.wait(id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.value, 42);
    assert.equal(done.polls, 3);
    assert.equal(done.name, 'makeBlockingPoller');
  });

  it('fails a task whose poll throws there, or whose factory is missing', async () => {
    const failing = await tm.wait(tm.submitPollingModule(GEN, 'makeFailingPoller'));
    assert.deepEqual(failing.error, { name: 'RangeError', message: 'the remote side is gone' });
    const missing = await tm.wait(tm.submitPollingModule(GEN, 'noSuchFactory'));
    assert.equal(missing.status, 'failed');
    assert.match(missing.error?.message ?? '', /to export a function `noSuchFactory`/);
  });

  it('fails a task whose result cannot be sent back, and the thread goes on for the others', async () => {
    const bad = await tm.wait(tm.submitPollingModule(GEN, 'makeUncloneablePoller'));
    assert.equal(bad.status, 'failed');
    assert.equal(bad.error?.name, 'DataCloneError');
    const flag = new SharedArrayBuffer(4);
    Atomics.store(new Int32Array(flag), 0, 1);
    const next = await tm.wait(tm.submitPollingModule(GEN, 'makeBlockingPoller', 4, flag));
    assert.deepEqual([next.status, next.value], ['succeeded', 8], 'not "the poller thread exited"');
  });

  it('cancels one while its run() blocks', async () => {
    const flag = new SharedArrayBuffer(4);
    const id = tm.submitPollingModule(GEN, 'makeBlockingPoller', 1, flag);
    assert.equal(tm.cancel(id).status, 'cancelled');
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    // The thread is free again: a later task runs to its end.
    const next = await tm.wait(tm.submitPollingModule(GEN, 'makeBlockingPoller', 2, flag));
    assert.equal(next.value, 4);
    assert.equal(tm.get(id)?.polls, 0);
  });
});
