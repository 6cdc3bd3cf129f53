import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type PollingTask, TaskManager } from 'jobworker/tasks';
import { ManualClock } from '../helpers/manual-clock.ts';
import { PollingGenTask } from './fixtures/gen-task.ts';

const GEN = new URL('./fixtures/gen-task.ts', import.meta.url);

/** Lets promise callbacks (async polls, run() promises) settle. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The next error thrown where no caller catches it (`uncaughtException`), kept from node:test,
 * which would take it for this test's failure; `restore` gives the runner back its listeners.
 */
function catchUncaught(): { readonly error: Promise<unknown>; restore(): void } {
  const runner = process.rawListeners('uncaughtException') as NodeJS.UncaughtExceptionListener[];
  process.removeAllListeners('uncaughtException');
  const { promise, resolve } = Promise.withResolvers<unknown>();
  process.once('uncaughtException', resolve);
  return {
    error: promise,
    restore() {
      process.off('uncaughtException', resolve);
      for (const listener of runner) process.on('uncaughtException', listener);
    },
  };
}

describe('TaskManager: blocking tasks', () => {
  const tm = new TaskManager({ concurrency: 4, threads: 2 });
  after(() => tm.close());

  it('runs gen_task(val) on a worker thread and answers 2*val', async () => {
    const id = tm.submitBlocking(GEN, 'blockingDouble', 21, 5);
    const done = await tm.wait(id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.value, 42);
    assert.equal(done.kind, 'blocking');
    assert.equal(done.name, 'blockingDouble');
    assert.ok(done.startedAt && done.finishedAt && done.finishedAt >= done.startedAt);
  });

  it('takes a plain absolute path as well as a URL', async () => {
    const done = await tm.wait(tm.submitBlocking(GEN.pathname, 'blockingDouble', 4, 0));
    assert.equal(done.value, 8);
  });

  it('records a thrown error as failed, with its name and message', async () => {
    const done = await tm.wait(tm.submitBlocking(GEN, 'throwing', 'out of range'));
    assert.equal(done.status, 'failed');
    assert.deepEqual(done.error, { name: 'RangeError', message: 'out of range' });
    assert.equal(done.value, undefined);
  });

  it('fails a task whose export is not a function, naming it', async () => {
    const done = await tm.wait(tm.submitBlocking(GEN, 'noSuchExport'));
    assert.equal(done.status, 'failed');
    assert.match(done.error?.message ?? '', /to export a function `noSuchExport`, got nothing/);
  });

  it('refuses a relative module path', () => {
    assert.throws(() => tm.submitBlocking('./gen-task.ts', 'blockingDouble'), {
      code: 'VALIDATION_FAILED',
      message: 'Expected `module` to be an absolute path or a file: URL, got `./gen-task.ts`',
    });
  });

  it('keeps the event loop free while a blocking task blocks its thread', async () => {
    // The task blocks until the main thread releases it after 100 turns of its event loop: if
    // the task blocked the main thread, this would never finish.
    const flag = new SharedArrayBuffer(4);
    const id = tm.submitBlocking(GEN, 'blockUntilReleased', flag);
    let turns = 0;
    await new Promise<void>((resolve) => {
      const turn = () => {
        if (++turns < 100) setImmediate(turn);
        else resolve();
      };
      setImmediate(turn);
    });
    assert.equal(tm.get(id)?.status, 'running');
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    const done = await tm.wait(id);
    assert.equal(done.value, 'released');
    assert.equal(turns, 100);
  });
});

describe('TaskManager: cancel', () => {
  it('cancels a queued task: it never starts', async () => {
    const tm = new TaskManager({ concurrency: 1, threads: 1 });
    try {
      const flag = new SharedArrayBuffer(4);
      const first = tm.submitBlocking(GEN, 'blockUntilReleased', flag);
      const second = tm.submitBlocking(GEN, 'blockingDouble', 1, 0);
      assert.equal(tm.get(second)?.status, 'queued');
      const started: string[] = [];
      tm.on('task:start', (t) => started.push(t.id));
      const cancelled = tm.cancel(second);
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.startedAt, undefined);
      Atomics.store(new Int32Array(flag), 0, 1);
      Atomics.notify(new Int32Array(flag), 0);
      assert.equal((await tm.wait(first)).status, 'succeeded');
      assert.equal((await tm.wait(second)).status, 'cancelled');
      assert.deepEqual(started, []);
      assert.throws(() => tm.cancel(second), { code: 'ALREADY_FINISHED' });
    } finally {
      await tm.close();
    }
  });

  it('cancels a running blocking task by ending its thread; the pool goes on', async () => {
    const tm = new TaskManager({ concurrency: 2, threads: 1 });
    try {
      const stuck = tm.submitBlocking(GEN, 'blockUntilReleased', new SharedArrayBuffer(4));
      const next = tm.submitBlocking(GEN, 'blockingDouble', 5, 0);
      assert.equal(tm.get(stuck)?.status, 'running');
      assert.equal(tm.get(next)?.status, 'queued', 'waits for the one thread');
      const events: string[] = [];
      tm.on('task:cancel', (t) => events.push(`cancel ${t.id}`));
      assert.equal(tm.cancel(stuck).status, 'cancelled');
      assert.deepEqual(events, [`cancel ${stuck}`]);
      const done = await tm.wait(next);
      assert.equal(done.value, 10);
    } finally {
      await tm.close();
    }
  });

  it('cancels a running polling task: no more polls, its cancel() is called', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 100, pollMaxMs: 100 });
    try {
      const task = new PollingGenTask(1, 10);
      const id = tm.submitPolling(task);
      clock.advance(100);
      assert.equal(tm.get(id)?.polls, 1);
      tm.cancel(id);
      assert.equal(task.cancelled, true);
      clock.advance(1000);
      assert.equal(tm.get(id)?.polls, 1);
      assert.equal(tm.get(id)?.status, 'cancelled');
      assert.equal(tm.stats().scheduled, 0, 'the cancelled poll is dropped from the heap');
    } finally {
      await tm.close();
    }
  });
});

describe('TaskManager: polling tasks', () => {
  it('polls gen_task until it is done, with the events in order', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 100, pollMaxMs: 100 });
    const events: string[] = [];
    for (const name of ['task:submit', 'task:start', 'task:succeed'] as const) {
      tm.on(name, (t) => events.push(`${name} ${t.status}`));
    }
    const id = tm.submitPolling(new PollingGenTask(7, 3));
    assert.equal(tm.get(id)?.status, 'running');
    clock.advance(100);
    clock.advance(100);
    assert.equal(tm.get(id)?.status, 'running');
    clock.advance(100);
    const done = await tm.wait(id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.value, 14);
    assert.equal(done.polls, 3);
    assert.equal(done.name, 'gen_task');
    assert.deepEqual(events, ['task:submit queued', 'task:start running', 'task:succeed succeeded']);
    await tm.close();
  });

  it('backs off while a task shows no progress and resets when it does', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 100, pollMaxMs: 800 });
    let progress = 0;
    const task: PollingTask = { run: () => undefined, poll: () => ({ done: false, progress }) };
    const id = tm.submitPolling(task);
    const intervals: (number | undefined)[] = [];
    // The first poll sees progress 0 (news), then none: 100, 200, 400, 800, 800.
    for (const step of [100, 100, 200, 400, 800]) {
      clock.advance(step);
      intervals.push(tm.get(id)?.pollIntervalMs);
    }
    assert.deepEqual(intervals, [100, 200, 400, 800, 800]);
    progress = 1;
    clock.advance(800);
    assert.equal(tm.get(id)?.pollIntervalMs, 100);
    assert.equal(tm.get(id)?.progress, 1);
    assert.equal(tm.stats().polls, 6);
    await tm.close();
  });

  it('polls on time when the wall clock is set back meanwhile (an NTP step)', async () => {
    class SteppedClock extends ManualClock {
      stepMs = 0;
      override now(): Date {
        return new Date(super.now().getTime() + this.stepMs);
      }
    }
    const clock = new SteppedClock();
    const tm = new TaskManager({ clock, pollInitialMs: 100, pollMaxMs: 100 });
    try {
      const id = tm.submitPolling(new PollingGenTask(1, 3));
      clock.advance(100);
      clock.stepMs = -30 * 60_000;
      clock.advance(100);
      assert.equal(tm.get(id)?.polls, 2, 'not put off for the 30 minutes the wall clock went back');
      clock.advance(100);
      assert.equal((await tm.wait(id)).value, 2);
    } finally {
      await tm.close();
    }
  });

  it('takes async run() and poll()', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 50, pollMaxMs: 50 });
    let polls = 0;
    const id = tm.submitPolling({
      run: async () => undefined,
      poll: async () => (++polls === 2 ? { done: true, value: 'ok' } : { done: false }),
    });
    await settle();
    clock.advance(50);
    await settle();
    clock.advance(50);
    assert.equal((await tm.wait(id)).value, 'ok');
    await tm.close();
  });

  it('fails a task whose poll throws, or answers something that is not a poll result', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 10, pollMaxMs: 10 });
    const boom = tm.submitPolling({
      run() {},
      poll() {
        throw new Error('lost the remote job');
      },
    });
    const odd = tm.submitPolling({ run() {}, poll: () => 'yes' as never });
    const badRun = tm.submitPolling({
      run: async () => {
        throw new TypeError('cannot start');
      },
      poll: () => ({ done: true, value: 1 }),
    });
    clock.advance(10);
    assert.deepEqual((await tm.wait(boom)).error, { name: 'Error', message: 'lost the remote job' });
    assert.match(
      (await tm.wait(odd)).error?.message ?? '',
      /Expected `poll\(\)` to return \{done: boolean\}, got `yes`/,
    );
    assert.deepEqual((await tm.wait(badRun)).error, { name: 'TypeError', message: 'cannot start' });
    await tm.close();
  });

  it('fails a task whose progress is not JSON (a cycle), and the others go on polling', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 10, pollMaxMs: 10 });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    let cancelled = 0;
    const bad = tm.submitPolling({
      run() {},
      poll: () => ({ done: false, progress: cycle }),
      // What it started is let go: nothing polls it any more.
      cancel: () => void cancelled++,
    });
    const good = tm.submitPolling(new PollingGenTask(5, 2));
    clock.advance(10);
    assert.match((await tm.wait(bad)).error?.message ?? '', /Expected `progress` to be JSON/);
    assert.equal(cancelled, 1);
    clock.advance(10);
    assert.equal((await tm.wait(good)).value, 10);
    await tm.close();
  });

  it('a listener that throws does not stop the polls, nor leave its task running or the next one queued', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, concurrency: 1, pollInitialMs: 10, pollMaxMs: 10 });
    let thrown = 0;
    const listener = () => {
      thrown++;
      throw new Error('a listener of the embedding program');
    };
    tm.on('task:progress', listener);
    tm.on('task:succeed', listener);
    const first = tm.submitPolling(new PollingGenTask(1, 2, true));
    const second = tm.submitPolling(new PollingGenTask(2, 1));
    assert.equal(tm.get(second)?.status, 'queued');
    // The listener's error is the timer's: it surfaces (here, out of advance()), as any other.
    for (let i = 0; i < 2; i++) {
      assert.throws(() => clock.advance(10), /a listener of the embedding program/);
    }
    assert.equal((await tm.wait(first)).status, 'succeeded');
    assert.equal(tm.get(second)?.status, 'running', 'the next task started all the same');
    tm.off('task:progress', listener);
    tm.off('task:succeed', listener);
    clock.advance(10);
    assert.equal((await tm.wait(second)).value, 4);
    assert.ok(thrown >= 2);
    await tm.close();
  });

  it('a task:submit listener that throws: submit returns the task, its error thrown uncaught, the task started', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, pollInitialMs: 10, pollMaxMs: 10 });
    const uncaught = catchUncaught();
    try {
      tm.once('task:submit', () => {
        throw new Error('a listener of the embedding program');
      });
      // The task is in: a submit that threw would be retried, and the task submitted twice.
      const id = tm.submitPolling(new PollingGenTask(1, 1));
      assert.match(String(await uncaught.error), /a listener of the embedding program/);
      assert.deepEqual(
        tm.list().map((t) => [t.id, t.status]),
        [[id, 'running']],
        'one task, not left queued',
      );
      clock.advance(10);
      assert.equal((await tm.wait(id)).value, 2);
    } finally {
      uncaught.restore();
      tm.removeAllListeners();
      await tm.close();
    }
  });

  it('a task:start listener that throws does not leave its task running with no work started', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, concurrency: 1, pollInitialMs: 10, pollMaxMs: 10 });
    try {
      const first = tm.submitPolling(new PollingGenTask(1, 1));
      const next = new PollingGenTask(2, 1);
      const nextId = tm.submitPolling(next);
      const listener = () => {
        throw new Error('a listener of the embedding program');
      };
      tm.on('task:start', listener);
      // The first's end starts the next: the listener's error surfaces out of the timer.
      assert.throws(() => clock.advance(10), /a listener of the embedding program/);
      assert.equal((await tm.wait(first)).status, 'succeeded');
      assert.equal(next.state, 0, 'its run() was called');
      assert.equal(tm.stats().scheduled, 1, 'its first poll is scheduled');
      tm.off('task:start', listener);
      clock.advance(10);
      assert.equal((await tm.wait(nextId)).value, 4);
      // A blocking task started at its submit: submit returns it, the error is thrown uncaught,
      // and the task runs on its thread.
      tm.on('task:start', listener);
      const uncaught = catchUncaught();
      try {
        const blocking = tm.submitBlocking(GEN, 'blockingDouble', 4, 0);
        assert.match(String(await uncaught.error), /a listener of the embedding program/);
        assert.equal(tm.get(blocking)?.kind, 'blocking');
        assert.equal((await tm.wait(blocking)).value, 8);
      } finally {
        uncaught.restore();
      }
    } finally {
      tm.removeAllListeners();
      await tm.close();
    }
  });

  it('refuses an object without run() or poll(), naming the field', () => {
    const tm = new TaskManager();
    assert.throws(() => tm.submitPolling({} as never), {
      message: 'Expected `task` to be an object with a run() method, got a object',
    });
    assert.throws(() => tm.submitPolling({ run() {} }), {
      message: /Expected `task.poll` to be a poll\(\) or checkOutput\(\) method/,
    });
  });

  it('polls 10,000 tasks on one timer: one wake-up per due time, none when nothing is due', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({
      clock,
      concurrency: 10_000,
      historySize: 10_000,
      pollInitialMs: 100,
      pollMaxMs: 400,
    });
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) ids.push(tm.submitPolling(new PollingGenTask(i, 4)));
    const finished = Promise.all(ids.map((id) => tm.wait(id)));
    assert.equal(tm.stats().scheduled, 10_000);
    // All started together and back off together: due at 100, 300, 700, 1100.
    for (const step of [100, 200, 400, 400]) clock.advance(step);
    const results = await finished;
    assert.ok(results.every((t, i) => t.status === 'succeeded' && t.value === 2 * i));
    assert.deepEqual(tm.stats(), { polls: 40_000, wakeUps: 4, scheduled: 0 });
    clock.advance(60_000);
    assert.equal(tm.stats().wakeUps, 4, 'no wake-up with nothing to poll');
    await tm.close();
  });

  it('queues polling tasks beyond `concurrency` and starts them as slots free', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, concurrency: 2, pollInitialMs: 10, pollMaxMs: 10 });
    const ids = [1, 2, 3].map((v) => tm.submitPolling(new PollingGenTask(v, 1)));
    assert.deepEqual(
      ids.map((id) => tm.get(id)?.status),
      ['running', 'running', 'queued'],
    );
    clock.advance(10);
    assert.equal(tm.get(ids[2] as string)?.status, 'running');
    clock.advance(10);
    assert.equal((await tm.wait(ids[2] as string)).value, 6);
    await tm.close();
  });
});

describe('TaskManager: history', () => {
  it('keeps historySize finished tasks, evicting the oldest finished first', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, historySize: 2, pollInitialMs: 10, pollMaxMs: 10 });
    const evicted: string[] = [];
    tm.on('task:evict', (t) => evicted.push(t.id));
    // Finish order is c, a, b (steps 1, 2, 3), not submission order.
    const a = tm.submitPolling(new PollingGenTask(1, 2));
    const b = tm.submitPolling(new PollingGenTask(2, 3));
    const c = tm.submitPolling(new PollingGenTask(3, 1));
    clock.advance(10);
    clock.advance(10);
    assert.deepEqual(evicted, []);
    clock.advance(10);
    assert.deepEqual(evicted, [c]);
    assert.equal(tm.get(c), undefined);
    assert.deepEqual(
      tm.list().map((t) => t.id),
      [a, b],
    );
    await assert.rejects(tm.wait(c), { code: 'NOT_FOUND', message: `No task with id ${c}` });
    assert.deepEqual(
      tm.list({ status: 'succeeded' }).map((t) => t.value),
      [2, 4],
    );
    await tm.close();
  });

  it('a task:evict listener that throws does not keep the evicting task from ending, nor the next from starting', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, concurrency: 1, historySize: 1, pollInitialMs: 10, pollMaxMs: 10 });
    try {
      const succeeded: string[] = [];
      tm.on('task:succeed', (t) => succeeded.push(t.id));
      tm.on('task:evict', () => {
        throw new Error('a listener of the embedding program');
      });
      const [first, second, third] = [1, 2, 3].map((v) => tm.submitPolling(new PollingGenTask(v, 1))) as [
        string,
        string,
        string,
      ];
      clock.advance(10);
      // The second's end evicts the first: the listener's error surfaces out of the timer.
      assert.throws(() => clock.advance(10), /a listener of the embedding program/);
      assert.deepEqual(succeeded, [first, second], 'its task:succeed is emitted all the same');
      assert.equal(tm.get(third)?.status, 'running', 'the next task started');
      assert.equal(tm.get(first), undefined);
      assert.equal((await tm.wait(second)).value, 4);
    } finally {
      tm.removeAllListeners();
      await tm.close();
    }
  });

  it('checks its options, naming the bad one', () => {
    assert.throws(() => new TaskManager({ concurrency: 0 }), {
      message: 'Expected `concurrency` to be a positive integer, got `0`',
    });
    assert.throws(() => new TaskManager({ pollInitialMs: 100, pollMaxMs: 50 }), {
      message: 'Expected `pollMaxMs` to be an integer >= pollInitialMs (100), got `50`',
    });
    assert.throws(() => new TaskManager({ historySize: -1 }), { field: 'historySize' });
  });
});

describe("TaskManager: the library design's status report", () => {
  it('reports running and finished tasks of both kinds at once', async () => {
    const clock = new ManualClock();
    const tm = new TaskManager({ clock, threads: 2, pollInitialMs: 100, pollMaxMs: 100 });
    try {
      const flag = new SharedArrayBuffer(4);
      const blockingDone = tm.submitBlocking(GEN, 'blockingDouble', 1, 0);
      await tm.wait(blockingDone);
      const blockingRunning = tm.submitBlocking(GEN, 'blockUntilReleased', flag);
      const pollingDone = tm.submitPolling(new PollingGenTask(3, 1));
      const pollingRunning = tm.submitPolling(new PollingGenTask(4, 5, true));
      clock.advance(100);
      const report = tm
        .list()
        .map((t) => ({ id: t.id, kind: t.kind, status: t.status, value: t.value, progress: t.progress }));
      assert.deepEqual(report, [
        { id: blockingDone, kind: 'blocking', status: 'succeeded', value: 2, progress: undefined },
        { id: blockingRunning, kind: 'blocking', status: 'running', value: undefined, progress: undefined },
        { id: pollingDone, kind: 'polling', status: 'succeeded', value: 6, progress: undefined },
        {
          id: pollingRunning,
          kind: 'polling',
          status: 'running',
          value: undefined,
          progress: { done: 1, total: 5 },
        },
      ]);
      assert.deepEqual(
        tm.list({ status: 'running' }).map((t) => t.id),
        [blockingRunning, pollingRunning],
      );
      Atomics.store(new Int32Array(flag), 0, 1);
      Atomics.notify(new Int32Array(flag), 0);
      await tm.wait(blockingRunning);
    } finally {
      await tm.close();
    }
  });
});
