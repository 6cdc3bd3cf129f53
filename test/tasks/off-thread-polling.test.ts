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
    // A task living on the thread meanwhile: had the thread ended, its object would be gone.
    const flag = new SharedArrayBuffer(28);
    const state = new Int32Array(flag);
    Atomics.store(state, 0, 1);
    const living = tm.submitPollingModule(GEN, 'makeSlowPoller', flag);
    await Atomics.waitAsync(state, 1, 0, 30_000).value; // it runs
    const bad = await tm.wait(tm.submitPollingModule(GEN, 'makeUncloneablePoller'));
    assert.equal(bad.status, 'failed');
    assert.equal(bad.error?.name, 'DataCloneError');
    const polls = tm.get(living)!.polls;
    while (tm.get(living)!.status === 'running' && tm.get(living)!.polls < polls + 2) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(tm.get(living)?.status, 'running', 'not "the poller thread exited"');
    tm.cancel(living);
  });

  it('fails a task whose arguments cannot be sent to the thread, naming the argument, and the thread goes on', async () => {
    const bad = await tm.wait(tm.submitPollingModule(GEN, 'makeBlockingPoller', 1, () => 'a function'));
    assert.equal(bad.status, 'failed');
    assert.deepEqual(bad.error, {
      name: 'ValidationError',
      message:
        'Expected `args[1]` to be structured-cloneable (the poller thread is given a copy), got a function',
    });
    const flag = new SharedArrayBuffer(4);
    Atomics.store(new Int32Array(flag), 0, 1);
    assert.equal((await tm.wait(tm.submitPollingModule(GEN, 'makeBlockingPoller', 2, flag))).value, 4);
  });

  it('cancels one while the thread is still making it: it is never run, and its cancel() is called', async () => {
    const flag = new SharedArrayBuffer(28);
    const state = new Int32Array(flag);
    const id = tm.submitPollingModule(GEN, 'makeSlowPoller', flag);
    await Atomics.waitAsync(state, 3, 0, 30_000).value; // the thread is in its factory
    assert.equal(tm.get(id)?.status, 'running');
    assert.equal(tm.cancel(id).status, 'cancelled');
    Atomics.store(state, 0, 1); // the factory may now return its object
    const woke = await Atomics.waitAsync(state, 2, 0, 30_000).value;
    assert.notEqual(woke, 'timed-out', "the object's cancel() was called");
    assert.equal(Atomics.load(state, 1), 0, 'its run() never ran');
  });

  it("close() lets a running task's cancel() run on the thread before it ends the thread", async () => {
    const own = new TaskManager({ pollInitialMs: 60_000, pollMaxMs: 60_000 });
    const flag = new SharedArrayBuffer(28);
    const state = new Int32Array(flag);
    Atomics.store(state, 0, 1);
    Atomics.store(state, 5, 1); // its cancel() takes until flag[4]
    const id = own.submitPollingModule(GEN, 'makeSlowPoller', flag);
    await Atomics.waitAsync(state, 1, 0, 30_000).value; // it runs
    assert.equal(own.get(id)?.status, 'running');
    const closing = own.close();
    // Its cancel() begins on the thread; a close() that ended the thread at once is done first.
    await Promise.race([Atomics.waitAsync(state, 6, 0, 30_000).value, closing]);
    Atomics.store(state, 4, 1);
    Atomics.notify(state, 4);
    await closing;
    assert.equal(Atomics.load(state, 2), 1, 'cancelled on the thread, not cut off with it');
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
