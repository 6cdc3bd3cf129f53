import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { withHeartbeats } from '../../src/service/with-heartbeats.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

/** A source that yields what it is given, when it is given it, and records its closing. */
function controlled<T>() {
  const queue: { resolve: (v: IteratorResult<T>) => void; reject: (e: Error) => void }[] = [];
  let closed = false;
  const source: AsyncGenerator<T> = {
    next: () =>
      new Promise<IteratorResult<T>>((resolve, reject) => {
        queue.push({ resolve, reject });
      }),
    return: async () => {
      closed = true;
      return { done: true, value: undefined };
    },
    throw: async (e: unknown) => {
      throw e;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    [Symbol.asyncDispose]: async () => undefined,
  };
  return {
    source,
    give: (value: T) => queue.shift()!.resolve({ done: false, value }),
    end: () => queue.shift()!.resolve({ done: true, value: undefined }),
    fail: (error: Error) => queue.shift()!.reject(error),
    closed: () => closed,
  };
}

/** A controlled source with heartbeats every 100 ms of `clock`. */
function heartbeatsOf(clock = new ManualClock()) {
  const c = controlled<string>();
  return { clock, c, beats: withHeartbeats(c.source, clock, 100) };
}

describe('withHeartbeats', () => {
  it("yields the source's values, and a heartbeat at the first tick of its period that finds none yielded since the last", async () => {
    const { clock, c, beats } = heartbeatsOf();
    const first = beats.next();
    c.give('a');
    assert.deepEqual((await first).value, 'a');
    const second = beats.next();
    let beat = false;
    void second.then(() => {
      beat = true;
    });
    await Promise.resolve();
    clock.advance(100);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(beat, false, "this period had 'a'");
    clock.advance(100);
    assert.deepEqual((await second).value, { type: 'heartbeat' });
    // Then one every period while the source stays quiet.
    const again = beats.next();
    await Promise.resolve();
    clock.advance(100);
    assert.deepEqual((await again).value, { type: 'heartbeat' });
    // The read still pending is the one the next value comes from: none is lost or doubled.
    const third = beats.next();
    await Promise.resolve();
    c.give('b');
    assert.deepEqual((await third).value, 'b');
    const last = beats.next();
    await Promise.resolve();
    c.end();
    assert.equal((await last).done, true);
    assert.equal(clock.pending, 0);
  });

  it('drops a beat that came while the consumer held a value: no heartbeat right after it', async () => {
    const { clock, c, beats } = heartbeatsOf();
    const first = beats.next();
    c.give('a');
    assert.deepEqual((await first).value, 'a');
    // The consumer holds 'a' (a slow client's write) for two periods.
    clock.advance(100);
    clock.advance(100);
    const next = beats.next();
    await Promise.resolve();
    c.give('b');
    assert.deepEqual((await next).value, 'b');
    await beats.return(undefined);
    assert.equal(clock.pending, 0);
  });

  it('keeps nothing of the values it passed on while no heartbeat came (a busy follow holds no output)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const clock = new ManualClock();
    const refs: WeakRef<Buffer>[] = [];
    async function* busy(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 50; i++) {
        const page = Buffer.alloc(64 * 1024, i);
        refs.push(new WeakRef(page));
        yield page;
      }
    }
    // A heartbeat period far longer than the stream: the beat never comes while it runs.
    const beats = withHeartbeats(busy(), clock, 60_000);
    for (let i = 0; i < 40; i++) await beats.next();
    // WeakRefs hold their targets until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    const alive = refs.slice(0, 30).filter((ref) => ref.deref() !== undefined).length;
    assert.equal(alive, 0, `${alive} of the first 30 values passed on are still held`);
    await beats.return(undefined);
  });

  it('keeps nothing of the calls heartbeats answered while one read stays pending (a quiet follow does not grow)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { clock, c, beats } = heartbeatsOf();
    const refs: WeakRef<Promise<unknown>>[] = [];
    for (let i = 0; i < 200; i++) {
      const call = beats.next();
      refs.push(new WeakRef(call));
      await Promise.resolve();
      clock.advance(100);
      clock.advance(100);
      assert.deepEqual((await call).value, { type: 'heartbeat' });
    }
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    const alive = refs.filter((ref) => ref.deref() !== undefined).length;
    assert.ok(alive <= 1, `${alive} of the 200 calls answered by a heartbeat are still held`);
    // The one read still pending is the next call's, the value it yields too.
    const next = beats.next();
    c.give('late');
    assert.deepEqual((await next).value, 'late');
    // One that settles while no call waits (a heartbeat answered the last) is the next call's.
    const beaten = beats.next();
    await Promise.resolve();
    clock.advance(100);
    clock.advance(100);
    assert.deepEqual((await beaten).value, { type: 'heartbeat' });
    c.give('kept');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual((await beats.next()).value, 'kept');
    await beats.return(undefined);
    assert.equal(c.closed(), true);
  });

  it("ends with the source's failure, its timer cleared", async () => {
    const { clock, c, beats } = heartbeatsOf();
    const first = beats.next();
    await Promise.resolve();
    c.fail(new Error('disk gone'));
    await assert.rejects(first, /disk gone/);
    assert.equal(clock.pending, 0);
  });

  it('closes at once after a heartbeat, and closes the source once its pending read settles', async () => {
    const { clock, c, beats } = heartbeatsOf();
    const first = beats.next();
    await Promise.resolve();
    clock.advance(100);
    assert.deepEqual((await first).value, { type: 'heartbeat' });
    // The consumer stops here (its client left): not held until the source gives something.
    assert.equal((await beats.return(undefined)).done, true);
    assert.equal(c.closed(), false, 'its read is still pending');
    assert.equal(clock.pending, 0);
    c.end();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(c.closed(), true);
  });

  it('closes the source at once when closed before its first read, and ends a pending read done when closed', async () => {
    const clock = new ManualClock();
    const unread = controlled<string>();
    await withHeartbeats(unread.source, clock, 100).return(undefined);
    assert.equal(unread.closed(), true);
    assert.equal(clock.pending, 0);
    const { c, beats } = heartbeatsOf(clock);
    const waiting = beats.next();
    await beats.return(undefined);
    assert.deepEqual(await waiting, { done: true, value: undefined });
    assert.deepEqual(await beats.next(), { done: true, value: undefined });
    c.end();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(c.closed(), true);
  });

  it('closes the source at once when closed at a value', async () => {
    const { clock, c, beats } = heartbeatsOf();
    const first = beats.next();
    c.give('a');
    await first;
    await beats.return(undefined);
    assert.equal(c.closed(), true);
    assert.equal(clock.pending, 0);
  });
});
