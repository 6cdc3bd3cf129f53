import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobService } from '../../src/service/job-service.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const admin = { user: 'admin', role: 'admin' } as const;
const alice = { user: 'alice', role: 'user' } as const;

describe('JobService.watchEvents', () => {
  let h: Harness;

  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('refuses a watcher over the limit before its stream, and frees the slot when one closes unread', async () => {
    const service = new JobService(h.engine, { maxWatchers: 1, clock: new ManualClock() });
    const first = await service.watchEvents(admin);
    await assert.rejects(service.watchEvents(admin), { code: 'CAPACITY_EXHAUSTED' });
    // Closed before it was ever read: the slot comes back all the same.
    await first.return(undefined);
    assert.equal(service.watchers, 0);
    const second = await service.watchEvents(admin);
    assert.equal((await second.next()).value?.kind, 'ready');
    await second.return(undefined);
    assert.equal(service.watchers, 0);
    await service.shutdown();
  });

  it('ends a watcher that fell behind with a reset, after the events it had room for', async () => {
    const service = new JobService(h.engine, { eventHistory: 2, clock: new ManualClock() });
    const watch = await service.watchEvents(admin);
    assert.equal((await watch.next()).value?.kind, 'ready');
    // Three jobs' worth of events while nobody reads: more than the two it may hold.
    for (let i = 0; i < 3; i++) await h.engine.waitFor((await service.start(alice, { command: 'true' })).id);
    const rest = [];
    for await (const message of watch) rest.push(message.kind);
    assert.deepEqual(rest, ['event', 'event', 'reset']);
    assert.equal(service.watchers, 0);
    await service.shutdown();
  });

  it('keeps events from the first watch on: a resumed watch gets what it missed, none from before', async () => {
    const service = new JobService(h.engine, { clock: new ManualClock() });
    // Before any watch: nothing is kept, since no client can hold an id of this server yet.
    await h.engine.waitFor((await service.start(alice, { command: 'true' })).id);
    const first = await service.watchEvents(admin);
    const ready = (await first.next()).value;
    assert.equal(ready?.kind, 'ready');
    const seen = ready?.kind === 'ready' ? ready.lastEventId : '';
    const [epoch, seq] = [
      seen.slice(0, seen.lastIndexOf('.')),
      Number(seen.slice(seen.lastIndexOf('.') + 1)),
    ];
    assert.ok(seq >= 3, `three events of the job before the watch, got ${seen}`);
    await first.return(undefined);

    const job = await service.start(alice, { command: 'true' });
    await h.engine.waitFor(job.id);
    const resumed = await service.watchEvents(admin, { lastEventId: seen });
    const messages = [];
    for (let i = 0; i < 4; i++) messages.push((await resumed.next()).value);
    await resumed.return(undefined);
    assert.deepEqual(
      messages.map((m) => (m?.kind === 'event' ? `${m.event.type} ${m.event.job.id === job.id}` : m?.kind)),
      ['ready', 'job:queued true', 'job:started true', 'job:finished true'],
    );

    const before = await service.watchEvents(admin, { lastEventId: `${epoch}.${seq - 1}` });
    assert.equal((await before.next()).value?.kind, 'reset');
    await before.return(undefined);
    await service.shutdown();
  });

  it('ends every watch at shutdown', async () => {
    const service = new JobService(h.engine, { clock: new ManualClock() });
    const watch = await service.watchEvents(alice);
    assert.equal((await watch.next()).value?.kind, 'ready');
    const ended = watch.next();
    await service.shutdown();
    assert.equal((await ended).done, true);
    assert.equal(service.watchers, 0);
  });
});
