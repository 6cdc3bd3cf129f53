import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp, rpcJobs } from '../helpers/rest-app-harness.ts';
import { SseParser } from '../helpers/sse-parser.ts';

interface SseEvent {
  event: string;
  id: string | null;
  data: string;
}

/** A live GET /v1/events over real TLS on loopback: its events as they arrive, and comment lines. */
class EventStream {
  readonly events: SseEvent[] = [];
  comments = 0;
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  #waiters: (() => void)[] = [];
  #close: () => void = () => undefined;

  static open(a: AppHarness, token: string, lastEventId?: string): Promise<EventStream> {
    const stream = new EventStream();
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        new URL('/v1/events', a.url),
        {
          ca: a.caPem,
          agent: false,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'text/event-stream',
            ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
          },
        },
        (res) => {
          stream.status = res.statusCode ?? 0;
          stream.headers = res.headers;
          const parser = new SseParser();
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            // Comment lines (heartbeats) are not events: count them from the raw text.
            stream.comments += chunk.split('\n').filter((line) => line.startsWith(':')).length;
            for (const e of parser.push(chunk)) {
              stream.events.push({ event: e.event, id: e.id, data: e.data });
            }
            stream.#notify();
          });
          res.on('error', () => undefined);
          resolve(stream);
        },
      );
      req.on('error', reject);
      stream.#close = () => req.destroy();
      req.end();
    });
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once `predicate` holds of what arrived. */
  async until(predicate: (s: EventStream) => boolean): Promise<void> {
    while (!predicate(this)) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves with the first event of `type` about job `id`. */
  async event(type: string, id: string): Promise<SseEvent> {
    const find = () => this.events.find((e) => e.event === type && JSON.parse(e.data).id === id);
    await this.until(() => find() !== undefined);
    return find()!;
  }

  close(): void {
    this.#close();
  }
}

describe('GET /v1/events and WatchEvents', () => {
  let h: Harness;
  let a: AppHarness;
  const clock = new ManualClock();
  let admin: string;
  let alice: string;
  let bob: string;
  let viewer: string;

  before(async () => {
    h = await openHarness();
    a = await openApp(h, { clock, tls: true, service: { eventHistory: 8, eventHeartbeatMs: 10_000 } });
    admin = await a.issue('admin', 'admin');
    alice = await a.issue('alice', 'user');
    bob = await a.issue('bob', 'user');
    viewer = await a.issue('vera', 'viewer');
  });
  after(async () => {
    // A test that failed half-way (a pause never heard) leaves its `sleep` running, or paused:
    // stopped here, not left frozen behind the suite.
    for (const job of (await h.engine.list({ limit: 100, status: ['running', 'paused'] })).jobs) {
      await h.engine.stop(job.id, { user: 'admin' }).catch(() => undefined);
      await h.engine.waitFor(job.id).catch(() => undefined);
    }
    await a.service.shutdown();
    await a.close();
    await h.close();
  });

  it('sends each caller the events of the jobs it may see, with the job as GET /v1/jobs/{id} shows it', async () => {
    const streams = {
      admin: await EventStream.open(a, admin),
      viewer: await EventStream.open(a, viewer),
      alice: await EventStream.open(a, alice),
    };
    for (const s of Object.values(streams)) {
      assert.equal(s.status, 200);
      await s.until((x) => x.events.length > 0);
      assert.equal(s.events[0]!.event, 'ready');
    }
    const bobsJob = await a.service.start({ user: 'bob', role: 'user' }, { command: 'echo', args: ['hi'] });
    const alicesJob = await a.service.start({ user: 'alice', role: 'user' }, { command: 'true' });
    for (const s of [streams.admin, streams.viewer]) {
      for (const type of ['job:queued', 'job:started', 'job:finished']) await s.event(type, bobsJob.id);
      await s.event('job:finished', alicesJob.id);
    }
    const finished = await streams.alice.event('job:finished', alicesJob.id);
    const res = await a.app.inject({
      url: `/v1/jobs/${alicesJob.id}`,
      headers: { authorization: `Bearer ${alice}` },
    });
    assert.deepEqual(JSON.parse(finished.data), res.json());
    // Alice never hears of bob's job: everything she got is about her own.
    await streams.alice.event('job:queued', alicesJob.id);
    for (const e of streams.alice.events.slice(1)) assert.equal(JSON.parse(e.data).owner, 'alice');
    // Ids increase along the stream.
    const seqs = streams.admin.events.slice(1).map((e) => Number(e.id!.split('.')[1]));
    assert.deepEqual(
      seqs,
      [...seqs].sort((x, y) => x - y),
    );
    for (const s of Object.values(streams)) s.close();
  });

  it('tells of a pause and a resume, with the job as it was recorded', async () => {
    const stream = await EventStream.open(a, alice);
    const who = { user: 'alice', role: 'user' } as const;
    const job = await a.service.start(who, { command: 'sleep', args: ['60'] });
    try {
      await stream.event('job:started', job.id);
      await a.service.pause(who, job.id);
      const paused = JSON.parse((await stream.event('job:paused', job.id)).data);
      assert.equal(paused.status, 'paused');
      assert.notEqual(paused.pausedAt, null);
      await a.service.resume(who, job.id);
      const resumed = JSON.parse((await stream.event('job:resumed', job.id)).data);
      assert.equal(resumed.status, 'running');
      assert.equal(resumed.pausedAt, null);
      // In the order they happened.
      const kinds = stream.events.filter((e) => e.data.includes(job.id)).map((e) => e.event);
      assert.deepEqual(kinds.slice(kinds.indexOf('job:started')), [
        'job:started',
        'job:paused',
        'job:resumed',
      ]);
    } finally {
      await a.service.stop(who, job.id).catch(() => undefined);
      await a.service.waitFor(who, job.id);
      stream.close();
    }
  });

  it('resumes after Last-Event-ID with exactly the missed events, and resets when they are gone', async () => {
    const first = await EventStream.open(a, bob);
    await first.until((s) => s.events.length > 0);
    const job = await a.service.start({ user: 'bob', role: 'user' }, { command: 'true' });
    const queued = await first.event('job:queued', job.id);
    await first.event('job:finished', job.id);
    first.close();

    const resumed = await EventStream.open(a, bob, queued.id!);
    await resumed.event('job:finished', job.id);
    assert.equal(resumed.events[0]!.event, 'ready');
    assert.equal(resumed.events[0]!.id, queued.id);
    assert.deepEqual(
      resumed.events.slice(1).map((e) => e.event),
      ['job:started', 'job:finished'],
    );
    resumed.close();

    // More events than the ring keeps (8): the old id is gone.
    for (let i = 0; i < 3; i++) {
      const more = await a.service.start({ user: 'bob', role: 'user' }, { command: 'true' });
      await h.engine.waitFor(more.id);
    }
    for (const stale of [queued.id!, 'abc.1', 'nonsense', `${queued.id!.split('.')[0]}.999999`]) {
      const reset = await EventStream.open(a, bob, stale);
      await reset.until((s) => s.events.length > 0);
      assert.equal(reset.events[0]!.event, 'reset', stale);
      const data = JSON.parse(reset.events[0]!.data) as { lastEventId: string; reason: string };
      assert.equal(data.lastEventId, reset.events[0]!.id);
      assert.ok(data.reason.length > 0);
      reset.close();
    }
  });

  it('sends a heartbeat comment when nothing happened for the heartbeat interval (on the injected clock)', async () => {
    const s = await EventStream.open(a, viewer);
    await s.until((x) => x.events.length > 0);
    assert.equal(s.comments, 0);
    clock.advance(10_000);
    await s.until((x) => x.comments === 1);
    clock.advance(10_000);
    await s.until((x) => x.comments === 2);
    s.close();
  });

  it('releases a watch when its client goes away', async () => {
    const s = await EventStream.open(a, viewer);
    await s.until((x) => x.events.length > 0);
    assert.ok(a.service.watchers >= 1);
    s.close();
    while (a.service.watchers > 0) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a.service.watchers, 0);
  });

  it('answers HEAD with the status and headers of GET, and no body', async () => {
    const get = await EventStream.open(a, viewer);
    await get.until((x) => x.events.length > 0);
    get.close();
    const head = await a.app.inject({
      method: 'HEAD',
      url: '/v1/events',
      headers: { authorization: `Bearer ${viewer}` },
    });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    const comparable = (headers: Record<string, unknown>) => {
      const { date: _d, connection: _c, 'transfer-encoding': _e, 'keep-alive': _k, ...rest } = headers;
      return rest;
    };
    assert.deepEqual(comparable(head.headers), comparable(get.headers));
  });

  it('needs credentials', async () => {
    const res = await a.app.inject({ url: '/v1/events' });
    assert.equal(res.statusCode, 401);
  });

  it('streams the same events over RPC (WatchEvents), resumable by id', async () => {
    const client = rpcJobs(a, alice);
    const controller = new AbortController();
    const stream = client.watchEvents({}, { signal: controller.signal })[Symbol.asyncIterator]();
    const ready = await stream.next();
    assert.equal(ready.value?.message.case, 'ready');
    const who = { user: 'alice', role: 'user' } as const;
    const job = await a.service.start(who, { command: 'sleep', args: ['60'] });
    const seen: string[] = [];
    let lastId = '';
    // Each change is made once the one before was heard: a pause needs the job started.
    const next: Record<string, () => Promise<unknown>> = {
      started: () => a.service.pause(who, job.id),
      paused: () => a.service.resume(who, job.id),
      resumed: () => a.service.stop(who, job.id),
    };
    const names = ['', 'queued', 'started', 'progress', 'finished', 'paused', 'resumed'];
    while (!seen.includes('finished')) {
      const { value } = await stream.next();
      if (value?.message.case !== 'event') continue;
      assert.equal(value.message.value.job?.id, job.id);
      lastId = value.message.value.id;
      const type = names[value.message.value.type]!;
      seen.push(type);
      await next[type]?.();
    }
    assert.deepEqual(seen, ['queued', 'started', 'paused', 'resumed', 'finished']);
    controller.abort();
    await stream.return?.();

    const again = client.watchEvents({ lastEventId: lastId })[Symbol.asyncIterator]();
    const first = await again.next();
    assert.equal(first.value?.message.case, 'ready');
    await again.return?.();
  });
});
