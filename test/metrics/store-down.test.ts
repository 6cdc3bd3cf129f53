import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobworkerError } from '../../src/core/errors.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

/**
 * `jobworker_store_up` was written before the read it tells of (the registry collects every metric
 * at once), so it said how the store answered the scrape before; and a failed read of the queues
 * failed the whole scrape (500), so a scrape that answered never said 0: an outage of the store
 * took the process's metrics with it, and looked like the server down.
 */
describe('GET /metrics while the store does not answer', () => {
  let h: Harness;
  let a: AppHarness;
  let admin = '';
  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    admin = await a.issue('root-admin', 'admin');
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  const scrape = async () => {
    const res = await a.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${admin}` } });
    assert.equal(res.statusCode, 200, res.body);
    return res.body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  };
  const sample = (lines: readonly string[], series: string) =>
    lines.find((line) => line.startsWith(`${series} `))?.slice(series.length + 1);

  it('answers with store_up 0 in the very scrape that failed, without the series it could not read, and 1 again at once', async () => {
    const job = await a.service.start(
      { user: 'root-admin', role: 'admin' },
      { command: 'true', queue: 'q1' },
    );
    await h.engine.waitFor(job.id);
    const healthy = await scrape();
    assert.equal(sample(healthy, 'jobworker_store_up'), '1');
    assert.equal(sample(healthy, 'jobworker_jobs{status="succeeded"}'), '1');
    assert.equal(sample(healthy, 'jobworker_queue_waiting{queue="q1"}'), '0');

    // The store stops answering both reads of a scrape (what a lost database does to them).
    const failure = () =>
      Promise.reject(new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (injected)'));
    const counts = h.store.webhooks.countJobsByStatus;
    const queues = h.engine.queues;
    h.store.webhooks.countJobsByStatus = failure;
    h.engine.queues = failure;
    let down: string[];
    try {
      down = await scrape();
    } finally {
      h.store.webhooks.countJobsByStatus = counts;
      h.engine.queues = queues;
    }
    assert.equal(sample(down, 'jobworker_store_up'), '0');
    assert.deepEqual(
      down.filter((line) => /^jobworker_(jobs|queue_waiting|queue_running)\{/.test(line)),
      [],
      'no count is shown that the store did not give',
    );
    // The rest of the exposition is there: the process's metrics and this node's counters.
    assert.ok(sample(down, 'process_start_time_seconds'));
    assert.equal(sample(down, 'jobworker_jobs_started_total{queue="q1"}'), '1');

    const again = await scrape();
    assert.equal(
      sample(again, 'jobworker_store_up'),
      '1',
      'up again in the first scrape that read the store',
    );
    assert.equal(sample(again, 'jobworker_jobs{status="succeeded"}'), '1');
  });

  it('says 0 when only one of the two reads fails', async () => {
    const queues = h.engine.queues;
    h.engine.queues = () =>
      Promise.reject(new JobworkerError('STORE_UNAVAILABLE', 'the store did not answer (injected)'));
    try {
      const lines = await scrape();
      assert.equal(sample(lines, 'jobworker_store_up'), '0');
      assert.equal(sample(lines, 'jobworker_jobs{status="succeeded"}'), '1', 'the counts it read are shown');
      assert.equal(sample(lines, 'jobworker_queue_waiting{queue="q1"}'), undefined);
    } finally {
      h.engine.queues = queues;
    }
  });
});
