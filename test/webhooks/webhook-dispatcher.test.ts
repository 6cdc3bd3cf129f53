import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { EventEmitter, once } from 'node:events';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import type { WebhookStore } from '../../src/store/webhook-store.ts';
import { WebhookAddressPolicy } from '../../src/webhooks/address-policy.ts';
import { LookupGate } from '../../src/webhooks/lookup-gate.ts';
import { retryDelayMs, WEBHOOK_RETRY_DEFAULTS } from '../../src/webhooks/webhook-backoff.ts';
import {
  CLAIM_MARGIN_MS,
  QUIET_RECHECK_MS,
  WebhookDispatcher,
  type WebhookDispatcherOptions,
} from '../../src/webhooks/webhook-dispatcher.ts';
import { signWebhook, verifyWebhookSignature } from '../../src/webhooks/webhook-signature.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

const open: { close(): Promise<void> }[] = [];
after(async () => {
  for (const thing of open.reverse()) await thing.close();
});

/** A dispatcher as the tests use it: every address trusted, jobs as their id and status. */
function dispatcherOver(
  store: WebhookDispatcherOptions['store'],
  clock: ManualClock,
  options: Partial<WebhookDispatcherOptions> = {},
): WebhookDispatcher {
  return new WebhookDispatcher({
    store,
    clock,
    policy: new WebhookAddressPolicy(),
    signingSecret: 'the-signing-secret',
    isTrusted: () => true,
    jobJson: (job: Job) => ({ id: job.id, status: job.status }),
    userAgent: 'jobworker/test',
    logger: silentLogger,
    ...options,
  });
}

type Overrides = {
  [K in keyof WebhookStore]?: (original: WebhookStore[K]) => WebhookStore[K];
};

/**
 * `store` with some methods replaced (a failing, stalled or contended database): each override is
 * given the original, bound to the store; every other method is the store's own.
 */
function storeWith(store: WebhookStore, overrides: Overrides): WebhookStore {
  return new Proxy(store, {
    get(target, key) {
      const value = Reflect.get(target, key) as unknown;
      if (typeof value !== 'function') return value;
      const original = value.bind(target);
      const override = overrides[key as keyof WebhookStore] as ((f: unknown) => unknown) | undefined;
      return override ? override(original) : original;
    },
  });
}

/** An engine on a fresh store, a receiver, and a dispatcher over that store on a manual clock. */
async function world(options: Partial<WebhookDispatcherOptions> = {}) {
  const h: Harness = await openHarness();
  const receiver = await WebhookReceiver.open();
  const clock = new ManualClock();
  const dispatcher = dispatcherOver(h.store.webhooks, clock, options);
  h.engine.on('job:finished', () => dispatcher.kick());
  open.push({ close: () => h.destroy() }, receiver, { close: () => dispatcher.close() });
  const finished = async (url: string) => {
    const job = await h.engine.start({ command: 'true', notify: { url } }, { user: 'u' });
    await h.engine.waitFor(job.id);
    return job;
  };
  return { h, receiver, clock, dispatcher, finished };
}

describe('webhook dispatch', () => {
  it('keeps a receiver that does not answer to its share of the attempts, and delivers to the others meanwhile', async () => {
    const w = await world({
      concurrency: 8,
      perOrigin: 2,
      timeoutMs: 5000,
      retry: { initialMs: 1000, maxMs: 1000 },
    });
    const other = await WebhookReceiver.open();
    open.push(other);
    w.receiver.answers = ['hang', 'hang', 'hang', 'hang'];
    const slow: Job[] = [];
    for (let i = 0; i < 20; i++) slow.push(await w.finished(w.receiver.url(`/slow/${i}`)));
    await w.receiver.nth(2);
    // Six of the eight slots are free, and eighteen deliveries wait for the slow receiver: the
    // other receiver's goes at once, on this clock, before any third attempt to the slow one.
    const attempted = once(w.dispatcher, 'delivery:attempt');
    const quick = await w.finished(other.url('/quick'));
    const first = await Promise.race([
      other.nth(1).then(() => 'other'),
      w.receiver.nth(3).then(() => 'a third to the slow receiver'),
    ]);
    assert.equal(first, 'other');
    const [delivered] = (await attempted) as [{ jobId: string; status: string }];
    assert.deepEqual([delivered.jobId, delivered.status], [quick.id, 'delivered']);
    assert.equal(w.receiver.received.length, 2, 'two attempts in flight to the slow receiver, no more');
    /** The slow receiver's deliveries by what holds them: leased (in flight), due (waiting), retrying. */
    const states = async () => {
      const now = w.clock.now().getTime();
      const out = { leased: 0, due: 0, retrying: 0, delivered: 0 };
      for (const job of slow) {
        const [d] = (await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
        if (d!.status === 'delivered') out.delivered++;
        else if (d!.attempts > 0) out.retrying++;
        else if (d!.nextAt!.getTime() > now) out.leased++;
        else out.due++;
      }
      return out;
    };
    // Those waiting were never claimed: due at their own times, in their turn.
    assert.deepEqual(await states(), { leased: 2, due: 18, retrying: 0, delivered: 0 });
    // The two time out; their ends make room for the next two, and no more.
    w.clock.advance(5000);
    await w.receiver.nth(4);
    assert.deepEqual(await states(), { leased: 2, due: 16, retrying: 2, delivered: 0 });
    assert.equal(w.receiver.received.length, 4);
    // The rest answered: every delivery made once the clock lets the retries come.
    for (let n = 0; n < 30 && (await states()).delivered < slow.length; n++) {
      w.clock.advance(5000);
      await w.dispatcher.settled();
    }
    assert.equal((await states()).delivered, slow.length);
    // Each delivered once, after the four attempts that timed out: none was made twice.
    assert.equal(w.receiver.received.length, 24);
  });

  it('refuses a concurrency or a share per receiver that is not a whole number of at least 1', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => dispatcherOver({} as never, new ManualClock(), { perOrigin: bad }),
        /`perOrigin` must be/,
      );
      assert.throws(
        () => dispatcherOver({} as never, new ManualClock(), { concurrency: bad }),
        /`concurrency` must be/,
      );
    }
  });

  it('keeps the lookups of names that never resolve to two at a time, and delivers to the others meanwhile', async () => {
    // A resolver that never answers (a name server that drops every query): getaddrinfo would
    // hold one of libuv's four threads for each such lookup, for as long as it tries.
    const begun = new EventEmitter();
    const unanswered: ((err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void)[] = [];
    const lookups = new LookupGate(2, (hostname, _options, callback) => {
      unanswered.push(callback);
      begun.emit('lookup', hostname);
    });
    const w = await world({ lookups, timeoutMs: 5000, retry: { initialMs: 60_000, maxMs: 60_000 } });
    const twoBegun = new Promise<void>((resolve) => {
      let n = 0;
      begun.on('lookup', () => ++n === 2 && resolve());
    });
    for (let i = 0; i < 5; i++) await w.finished(`http://never-${i}.invalid:9/hook`);
    await twoBegun;
    // A receiver named by its address needs no lookup: delivered while the five wait.
    const quick = await w.finished(w.receiver.url('/quick'));
    await w.receiver.nth(1);
    assert.equal(w.receiver.received.length, 1);
    assert.deepEqual(
      [lookups.running, lookups.waiting],
      [2, 3],
      'two lookups at once; three wait their turn',
    );
    // The five attempts time out on the clock; the three lookups that never began are dropped,
    // and the two under way keep their places until getaddrinfo returns.
    const failed = new Promise<string[]>((resolve) => {
      const errors: string[] = [];
      w.dispatcher.on('delivery:attempt', (d: { jobId: string; lastError: string | null }) => {
        if (d.jobId !== quick.id && errors.push(d.lastError ?? '') === 5) resolve(errors);
      });
    });
    w.clock.advance(5000);
    assert.deepEqual(await failed, Array(5).fill('no answer within 5000 ms'));
    assert.deepEqual([lookups.running, lookups.waiting], [2, 0]);
    for (const callback of unanswered)
      callback(Object.assign(new Error('timed out'), { code: 'EAI_AGAIN' }), []);
    assert.deepEqual(
      [lookups.running, lookups.waiting, unanswered.length],
      [0, 0, 2],
      'two lookups made, ever',
    );
    await w.dispatcher.settled();
  });

  it('fails an attempt that gets no answer in time (on the clock) and tries again', async () => {
    const w = await world({ timeoutMs: 5000, retry: { initialMs: 1000, maxMs: 1000 } });
    w.receiver.answers = ['hang'];
    const job = await w.finished(w.receiver.url('/slow'));
    await w.receiver.nth(1);
    const attempted = once(w.dispatcher, 'delivery:attempt');
    w.clock.advance(5000);
    const [first] = (await attempted) as [{ status: string; lastError: string; attempts: number }];
    assert.deepEqual(
      [first.status, first.attempts, first.lastError],
      ['pending', 1, 'no answer within 5000 ms'],
    );
    await w.dispatcher.settled();
    w.clock.advance(1000);
    await w.receiver.nth(2);
    await w.dispatcher.settled();
    const { deliveries } = await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 10 });
    assert.deepEqual(
      deliveries.map((d) => [d.status, d.attempts, d.lastStatus]),
      [['delivered', 2, 200]],
    );
  });

  it('gives up a delivery still failing at its maximum age, not before, and arms no timer for it', async () => {
    const w = await world({ retry: { initialMs: 3_600_000, maxMs: 3_600_000, maxAgeMs: 2 * 3_600_000 } });
    w.receiver.answers = [500, 500, 500, 500, 500];
    const madeAt = w.clock.now().getTime();
    const job = await w.finished(w.receiver.url('/down'));
    for (let n = 1; ; n++) {
      await w.receiver.nth(n);
      await w.dispatcher.settled();
      const [d] = (await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
      if (d!.status === 'failed') break;
      assert.ok(n < 5, 'gave up within its age');
      // To the next attempt's time exactly (each wait is drawn from 30 to 60 minutes).
      w.clock.advance(d!.nextAt!.getTime() - w.clock.now().getTime());
    }
    const [gaveUp] = (await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
    assert.equal(gaveUp!.createdAt.getTime(), madeAt);
    // Its last attempt was at the deadline: the wait to it (30 to 60 min, drawn) was cut there.
    assert.equal(gaveUp!.lastAt!.getTime(), madeAt + 2 * 3_600_000);
    assert.equal(gaveUp!.nextAt, null);
    assert.equal(gaveUp!.lastError, 'answered HTTP 500');
    assert.equal(await w.h.store.webhooks.nextDueAt([]), null);
  });

  it('refuses a name that resolves to loopback, and IPv4-mapped loopback, for an untrusted owner', async () => {
    const w = await world({ isTrusted: () => false });
    const port = new URL(w.receiver.url()).port;
    for (const url of [`http://localhost:${port}/x`, `http://[::ffff:127.0.0.1]:${port}/x`]) {
      const job = await w.finished(url);
      await w.dispatcher.settled();
      const [d] = (await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
      assert.equal(d!.status, 'failed', url);
      assert.match(d!.lastError ?? '', /is a loopback, private or reserved address/);
    }
    assert.equal(w.receiver.received.length, 0);
  });

  it('records job:progress (no state change) only for jobs or webhooks that want it, and delivers it', async () => {
    const w = await world();
    const wants = await w.h.engine.start(
      { command: 'true', notify: { url: w.receiver.url('/progress'), events: ['job:progress'] } },
      { user: 'u' },
    );
    const ignores = await w.h.engine.start({ command: 'true' }, { user: 'u' });
    await w.h.engine.waitFor(wants.id);
    await w.h.engine.waitFor(ignores.id);
    await w.dispatcher.settled();
    assert.equal(w.receiver.received.length, 0, 'it wants job:progress only');
    await w.dispatcher.record('job:progress', await w.h.engine.get(ignores.id));
    assert.deepEqual(await w.h.store.webhooks.readOutbox(10), [], 'nobody wants it: nothing written');
    await w.dispatcher.record('job:progress', await w.h.engine.get(wants.id));
    const got = await w.receiver.nth(1);
    assert.deepEqual([got.path, got.headers['jobworker-event']], ['/progress', 'job:progress']);
    assert.equal((JSON.parse(got.body) as { job: { id: string } }).job.id, wants.id);
  });

  /**
   * A world whose dispatcher writes jobs as their id and progress, and an ended job that wants
   * `job:progress`; `at(done)` is that job reporting `done`, `progressOf()` the `done` of each
   * progress delivery made for it, once the dispatcher has settled.
   */
  async function progressWorld(options: Partial<WebhookDispatcherOptions> = {}) {
    const w = await world({ jobJson: (job: Job) => ({ id: job.id, progress: job.progress }), ...options });
    const job = await w.h.engine.start(
      { command: 'true', notify: { url: w.receiver.url('/progress'), events: ['job:progress'] } },
      { user: 'u' },
    );
    const ended = await w.h.engine.waitFor(job.id);
    await w.dispatcher.settled();
    const at = (done: number): Job => ({
      ...ended,
      progress: { done, total: null, message: null, at: w.clock.now() },
    });
    const progressOf = async () => {
      await w.dispatcher.settled();
      const { deliveries } = await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 100 });
      return deliveries
        .filter((d) => d.event === 'job:progress')
        .map((d) => (JSON.parse(d.body) as { job: { progress: { done: number } } }).job.progress.done)
        .sort((x, y) => x - y);
    };
    return { ...w, job, at, progressOf };
  }

  it('keeps job:progress to one event per job a second, the latest of each second, none after its end', async () => {
    // A job may report progress on every turn of a loop; each report was a delivery of the whole
    // job, retried for a day while its receiver was down: any user could fill the store.
    const w = await progressWorld();
    for (let done = 1; done <= 500; done++) await w.dispatcher.record('job:progress', w.at(done));
    assert.deepEqual(await w.progressOf(), [1], 'the first at once, the rest held');
    w.clock.advance(1000);
    assert.deepEqual(await w.progressOf(), [1, 500], "the second's latest when it ended");
    w.clock.advance(1000);
    assert.deepEqual(await w.progressOf(), [1, 500], 'nothing more came: nothing more is written');
    await w.dispatcher.record('job:progress', w.at(600));
    assert.deepEqual(await w.progressOf(), [1, 500, 600], 'a job quiet for a second is heard at once');
    await w.dispatcher.record('job:progress', w.at(700));
    w.dispatcher.jobEnded(w.job.id);
    w.clock.advance(1000);
    assert.deepEqual(await w.progressOf(), [1, 500, 600], 'what its end came after is dropped');
  });

  it("writes no progress held back past the job's end: its job:finished came first", async () => {
    let running = true;
    const w = await progressWorld({ stillRunning: () => Promise.resolve(running) });
    await w.dispatcher.record('job:progress', w.at(1));
    await w.dispatcher.record('job:progress', w.at(2));
    assert.deepEqual(await w.progressOf(), [1]);
    // The job's end is recorded, and the engine has not told the dispatcher yet (`jobEnded`).
    running = false;
    w.clock.advance(1000);
    assert.deepEqual(await w.progressOf(), [1], 'the held progress is dropped, not written after the end');
  });

  /** A world whose store fails the first `n` calls of one method, as a full or lost database does. */
  async function failingWorld(method: 'recordAttempt' | 'listWebhooks', n: number) {
    const h: Harness = await openHarness();
    const receiver = await WebhookReceiver.open();
    const clock = new ManualClock();
    let failures = n;
    const store = storeWith(h.store.webhooks, {
      [method]:
        (original: (...a: unknown[]) => Promise<unknown>) =>
        async (...args: unknown[]) => {
          if (failures-- > 0) throw new Error('database or disk is full');
          return original(...args);
        },
    });
    const dispatcher = dispatcherOver(store, clock, { retry: { initialMs: 1000, maxMs: 1000 } });
    const errors: Error[] = [];
    dispatcher.on('dispatcher:error', (err) => errors.push(err));
    h.engine.on('job:finished', () => dispatcher.kick());
    open.push({ close: () => h.destroy() }, receiver, { close: () => dispatcher.close() });
    const job = await h.engine.start(
      { command: 'true', notify: { url: receiver.url('/hook') } },
      { user: 'u' },
    );
    await h.engine.waitFor(job.id);
    return { h, receiver, clock, dispatcher, errors, job };
  }

  it('holds a delivery whose attempt could not be recorded until its claim ends, not sending it again at once', async () => {
    const w = await failingWorld('recordAttempt', 1);
    await w.receiver.nth(1);
    await w.dispatcher.settled();
    assert.equal(w.errors.length, 1);
    assert.equal(w.receiver.received.length, 1, 'not sent again at every pass, as fast as it answers');
    w.clock.advance(10_000 + CLAIM_MARGIN_MS - 1);
    await w.dispatcher.settled();
    assert.equal(w.receiver.received.length, 1, 'its lease holds it');
    w.clock.advance(1);
    await w.receiver.nth(2);
    await w.dispatcher.settled();
    const { deliveries } = await w.h.store.webhooks.listDeliveries({ jobId: w.job.id, limit: 10 });
    assert.deepEqual(
      deliveries.map((d) => [d.status, d.attempts, d.lastStatus]),
      [['delivered', 1, 200]],
    );
  });

  it('gives back at close what it claimed and could not record: due at once for the next server', async () => {
    const w = await failingWorld('recordAttempt', 1);
    await w.receiver.nth(1);
    await w.dispatcher.settled();
    const [held] = (await w.h.store.webhooks.listDeliveries({ jobId: w.job.id, limit: 1 })).deliveries;
    assert.deepEqual(held!.nextAt, new Date(w.clock.now().getTime() + 10_000 + CLAIM_MARGIN_MS));
    await w.dispatcher.close();
    const [back] = (await w.h.store.webhooks.listDeliveries({ jobId: w.job.id, limit: 1 })).deliveries;
    assert.deepEqual([back!.status, back!.attempts, back!.nextAt], ['pending', 0, w.clock.now()]);
  });

  it('makes no second attempt of a delivery claimed again while its attempt here outlived the lease', async () => {
    const h: Harness = await openHarness();
    const receiver = await WebhookReceiver.open();
    const clock = new ManualClock();
    // The receiver takes it at once (200); the record of that attempt stalls (a busy database) past the claim's lease.
    let unstall: () => void = () => undefined;
    const stalled = new Promise<void>((resolve) => {
      unstall = resolve;
    });
    let recording = (): void => undefined;
    const recordingStarted = new Promise<void>((resolve) => {
      recording = resolve;
    });
    const store = storeWith(h.store.webhooks, {
      recordAttempt:
        (original) =>
        async (...args) => {
          recording();
          await stalled;
          return original(...args);
        },
    });
    const dispatcher = dispatcherOver(store, clock);
    open.push({ close: () => h.destroy() }, receiver, dispatcher);
    const job = await h.engine.start(
      { command: 'true', notify: { url: receiver.url('/slow') } },
      { user: 'u' },
    );
    await h.engine.waitFor(job.id);
    dispatcher.kick();
    await receiver.nth(1);
    await recordingStarted;
    clock.advance(10_000 + CLAIM_MARGIN_MS);
    dispatcher.kick();
    // A pass claims it again (its lease ended) while its attempt still records.
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    unstall();
    await dispatcher.settled();
    assert.equal(receiver.received.length, 1, 'one attempt at a time from one server');
    const [d] = (await h.store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
    assert.deepEqual([d!.status, d!.attempts], ['delivered', 1]);
  });

  it('tries a pass that failed (the store was busy) again on the clock, with nothing else to wake it', async () => {
    const w = await failingWorld('listWebhooks', 1);
    await w.dispatcher.settled();
    assert.equal(w.errors.length, 1);
    assert.equal(w.receiver.received.length, 0);
    w.clock.advance(1000);
    const got = await w.receiver.nth(1);
    assert.equal(got.path, '/hook');
    await w.dispatcher.settled();
  });

  it('keeps a delivery pending when its attempt cannot be recorded (the store went away), and closes', async () => {
    const w = await world();
    w.receiver.answers = ['hang'];
    const job = await w.finished(w.receiver.url('/lost'));
    await w.receiver.nth(1);
    const [pending] = (await w.h.store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
    assert.deepEqual([pending!.status, pending!.attempts], ['pending', 0]);
    const failed = once(w.dispatcher, 'dispatcher:error');
    await w.h.close();
    // The receiver now answers (its connection is cut): the record of that attempt fails.
    await w.receiver.close();
    const [err] = (await failed) as [Error];
    assert.ok(err instanceof Error);
    await w.dispatcher.close();
    // At least once: the unrecorded attempt is still due, for the next server to make.
    const store = await SqliteJobStore.open(join(w.h.dataDir, 'jobworker.db'));
    try {
      const [still] = (await store.webhooks.listDeliveries({ jobId: job.id, limit: 1 })).deliveries;
      assert.deepEqual([still!.status, still!.attempts, still!.id], ['pending', 0, pending!.id]);
    } finally {
      await store.close();
    }
  });
});

describe('webhook dispatch by the nodes of a cluster (one store, a dispatcher each)', () => {
  it('sends each delivery once, whichever node claims it', async () => {
    const h: Harness = await openHarness();
    const receiver = await WebhookReceiver.open();
    const clock = new ManualClock();
    const nodes = ['node-a', 'node-b', 'node-c'].map((claimer) =>
      dispatcherOver(h.store.webhooks, clock, { claimer }),
    );
    open.push({ close: () => h.destroy() }, receiver, ...nodes);
    h.engine.on('job:finished', () => {
      for (const node of nodes) node.kick();
    });
    const jobs = await Promise.all(
      Array.from({ length: 12 }, () =>
        h.engine.start({ command: 'true', notify: { url: receiver.url('/once') } }, { user: 'u' }),
      ),
    );
    for (const job of jobs) await h.engine.waitFor(job.id);
    await receiver.nth(12);
    for (const node of nodes) node.kick();
    await Promise.all(nodes.map((node) => node.settled()));
    const ids = receiver.received.map((r) => r.headers['jobworker-delivery']);
    assert.equal(ids.length, 12, 'each sent once, not once per node');
    assert.equal(new Set(ids).size, 12);
  });

  it("claims again shortly, not at once, when another node's open claim held what is due", async () => {
    const h: Harness = await openHarness();
    const receiver = await WebhookReceiver.open();
    const clock = new ManualClock();
    let claims = 0;
    // The first claim meets rows another node's claim has locked: it gets nothing, though the
    // store says something is due now.
    const contended = storeWith(h.store.webhooks, {
      claimDueDeliveries:
        (original) =>
        async (...args) => {
          claims++;
          if (claims === 1) return [];
          return original(...args);
        },
    });
    const dispatcher = dispatcherOver(contended, clock);
    open.push({ close: () => h.destroy() }, receiver, dispatcher);
    const job = await h.engine.start(
      { command: 'true', notify: { url: receiver.url('/later') } },
      { user: 'u' },
    );
    await h.engine.waitFor(job.id);
    dispatcher.kick();
    await dispatcher.settled();
    assert.equal(claims, 1, 'no pass after pass while the rows are locked');
    assert.equal(receiver.received.length, 0);
    clock.advance(100);
    await receiver.nth(1);
    await dispatcher.settled();
  });

  it("takes over a dead node's delivery when its claim ends, and a node started again takes back its own at once", async () => {
    const h: Harness = await openHarness();
    const receiver = await WebhookReceiver.open();
    const clock = new ManualClock();
    open.push({ close: () => h.destroy() }, receiver);
    const jobs = [];
    for (const path of ['/dead', '/mine']) {
      const job = await h.engine.start(
        { command: 'true', notify: { url: receiver.url(path) } },
        { user: 'u' },
      );
      await h.engine.waitFor(job.id);
      jobs.push(job);
    }
    // A dispatcher that only fans the events out (it claims nothing); then two nodes claim one
    // delivery each and die before recording an attempt.
    const store = h.store.webhooks;
    const fanOnly = dispatcherOver(
      storeWith(store, {
        claimDueDeliveries: () => async () => [],
        nextDueAt: () => async () => null,
      }),
      clock,
      { claimer: 'fan' },
    );
    fanOnly.kick();
    await fanOnly.settled();
    await fanOnly.close();
    const until = new Date(clock.now().getTime() + 30_000);
    const [dead] = await store.claimDueDeliveries(clock.now(), 1, { by: 'node-dead', until });
    const [mine] = await store.claimDueDeliveries(clock.now(), 1, { by: 'node-b', until });
    assert.ok(dead && mine);
    // node-b starts again: its own claim comes back at once, the dead node's waits for its lease.
    const nodeB = dispatcherOver(store, clock, { claimer: 'node-b' });
    open.push(nodeB);
    nodeB.kick();
    const first = await receiver.nth(1);
    await nodeB.settled();
    assert.equal(first.headers['jobworker-delivery'], mine.id);
    assert.equal(receiver.received.length, 1);
    clock.advance(30_000);
    const second = await receiver.nth(2);
    assert.equal(second.headers['jobworker-delivery'], dead.id);
    await nodeB.settled();
    assert.equal(receiver.received.length, 2);
  });
});

describe('webhook dispatch while nothing is to deliver', () => {
  /** A world whose dispatcher hears job changes by `notice`, as the server wires it, counting passes. */
  async function quietWorld() {
    const h: Harness = await openHarness();
    const receiver = await WebhookReceiver.open();
    const clock = new ManualClock();
    const store = h.store.webhooks;
    let passes = 0;
    // The real store; only its first call of each pass is counted.
    const counted = storeWith(store, {
      listWebhooks: (original) => () => {
        passes++;
        return original();
      },
    });
    const dispatcher = dispatcherOver(counted, clock);
    for (const event of ['job:queued', 'job:started', 'job:finished'] as const) {
      h.engine.on(event, (job: Job) => dispatcher.notice(job));
    }
    open.push({ close: () => h.destroy() }, receiver, { close: () => dispatcher.close() });
    dispatcher.kick();
    await dispatcher.settled();
    const run = async (spec: Parameters<Harness['engine']['start']>[0]) => {
      const job = await h.engine.start(spec, { user: 'u' });
      await h.engine.waitFor(job.id);
      await dispatcher.settled();
      return job;
    };
    return { h, receiver, clock, dispatcher, run, passes: () => passes };
  }

  it('runs no pass per job change, and one at most every QUIET_RECHECK_MS', async () => {
    const w = await quietWorld();
    assert.equal(w.passes(), 1, 'the first pass found nothing');
    for (let i = 0; i < 5; i++) await w.run({ command: 'true' });
    assert.equal(w.passes(), 1, 'fifteen changes of jobs nobody wants ran no pass');
    w.clock.advance(QUIET_RECHECK_MS);
    await w.dispatcher.settled();
    assert.equal(w.passes(), 2, 'the changes let by are looked at once, on the clock');
    w.clock.advance(10 * QUIET_RECHECK_MS);
    await w.dispatcher.settled();
    assert.equal(w.passes(), 2, 'no change, no pass');
  });

  it("delivers a job's own notify at once, quiet or not", async () => {
    const w = await quietWorld();
    const job = await w.run({ command: 'true', notify: { url: w.receiver.url('/mine') } });
    const got = await w.receiver.nth(1);
    assert.equal((JSON.parse(got.body) as { job: { id: string } }).job.id, job.id);
  });

  it('delivers what a webhook added behind its back (another node) made the store record, within QUIET_RECHECK_MS', async () => {
    const w = await quietWorld();
    // Added straight to the store, as another node of a cluster would: no kick here.
    await w.h.store.webhooks.addWebhook({
      id: '01900000-0000-7000-8000-000000000001',
      url: w.receiver.url('/all'),
      events: ['job:finished'],
      secret: 'x'.repeat(16),
      createdAt: new Date(),
      createdBy: 'admin',
    });
    const job = await w.run({ command: 'true' });
    assert.equal(w.receiver.received.length, 0, 'not yet: the dispatcher still believes nothing is to do');
    w.clock.advance(QUIET_RECHECK_MS);
    const got = await w.receiver.nth(1);
    assert.equal(got.path, '/all');
    assert.equal((JSON.parse(got.body) as { job: { id: string } }).job.id, job.id);
    await w.dispatcher.settled();
    const before = w.passes();
    await w.run({ command: 'true' });
    assert.ok(w.passes() > before, 'with a webhook, every change runs a pass');
    await w.receiver.nth(2);
  });

  it('closes with a recheck pending: its timer goes, and no pass runs after', async () => {
    const w = await quietWorld();
    await w.run({ command: 'true' });
    await w.dispatcher.close();
    w.clock.advance(QUIET_RECHECK_MS);
    await w.dispatcher.settled();
    assert.equal(w.passes(), 1);
  });
});

describe('webhook parts', () => {
  it('backoff doubles from initialMs to maxMs, with jitter in the upper half', () => {
    const p = WEBHOOK_RETRY_DEFAULTS;
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => retryDelayMs(p, n, () => 0)),
      [5_000, 10_000, 20_000, 40_000],
    );
    assert.equal(
      retryDelayMs(p, 1, () => 0.999_999),
      10_000,
    );
    assert.equal(
      retryDelayMs(p, 30, () => 0.5),
      2_700_000,
    );
    assert.equal(
      retryDelayMs(p, 30, () => 0),
      1_800_000,
    );
  });

  it('signs with t and v1 over "t.body"; a change of body, secret or an old time fails', () => {
    const at = new Date('2026-12-02T12:00:00Z');
    const header = signWebhook('k', at, '{"a":1}');
    assert.match(header, new RegExp(`^t=${at.getTime() / 1000},v1=[0-9a-f]{64}$`));
    assert.ok(verifyWebhookSignature(header, '{"a":1}', 'k', at));
    assert.equal(verifyWebhookSignature(header, '{"a":2}', 'k', at), false);
    assert.equal(verifyWebhookSignature(header, '{"a":1}', 'K', at), false);
    assert.equal(verifyWebhookSignature(header, '{"a":1}', 'k', new Date(at.getTime() + 301_000)), false);
  });

  it('the address policy: private ranges refused unless trusted or allowed; bad CIDRs named', () => {
    const policy = new WebhookAddressPolicy(['10.20.0.0/16', 'fd00::/8']);
    for (const ip of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '::1',
      'fe80::1',
      '::ffff:10.0.0.1',
      '0.0.0.0',
      '100.64.0.1',
      '192.0.2.10',
      '198.51.100.7',
      '203.0.113.99',
      '64:ff9b:1::a00:1',
      '100::1',
      '2001:0:4136:e378:8000:63bf:3fff:fdd2',
      '2001:db8::1',
      '2002:c0a8:101::1',
    ]) {
      assert.ok(policy.refusal(ip, false), ip);
      assert.equal(policy.refusal(ip, true), null, `${ip} trusted`);
    }
    for (const ip of ['93.184.216.34', '2606:4700::1', '10.20.3.4', 'fd12::1', '::ffff:10.20.0.9']) {
      assert.equal(policy.refusal(ip, false), null, ip);
    }
    assert.throws(() => new WebhookAddressPolicy(['10.0.0.0/33']), /Expected `webhookAllow` to be CIDRs/);
    assert.throws(() => new WebhookAddressPolicy(['example.com/8']), /Expected `webhookAllow` to be CIDRs/);
  });
});
