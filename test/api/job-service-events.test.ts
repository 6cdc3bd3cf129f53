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
