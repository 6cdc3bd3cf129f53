import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

describe('GET /metrics: series per queue', () => {
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

  /** The sample lines of a scrape that carry this queue label. */
  const seriesOf = async (queue: string) => {
    const res = await a.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${admin}` } });
    assert.equal(res.statusCode, 200);
    return res.body.split('\n').filter((line) => !line.startsWith('#') && line.includes(`queue="${queue}"`));
  };
  /** Runs a job in `queue` to its end; resolves with its id. */
  const ran = async (queue: string) => {
    const job = await a.service.start({ user: 'root-admin', role: 'admin' }, { command: 'true', queue });
    await h.engine.waitFor(job.id);
    return job.id;
  };
  const names = (lines: readonly string[]) => new Set(lines.map((line) => line.replace(/[{ ].*$/, '')));

  it('drops every series of a queue when it is forgotten with its last job, and keeps those of a queue with jobs', async () => {
    const id = await ran('gone');
    await ran('kept');
    const before = await seriesOf('gone');
    assert.deepEqual(
      names(before),
      new Set([
        'jobworker_jobs_started_total',
        'jobworker_jobs_finished_total',
        'jobworker_job_start_latency_seconds_bucket',
        'jobworker_job_start_latency_seconds_sum',
        'jobworker_job_start_latency_seconds_count',
        'jobworker_job_run_duration_seconds_bucket',
        'jobworker_job_run_duration_seconds_sum',
        'jobworker_job_run_duration_seconds_count',
        'jobworker_queue_running',
        'jobworker_queue_waiting',
      ]),
    );
    // Forgotten with its last job, and made again by the next one before any scrape: what was
    // counted for it before is gone, and its counters start again (Prometheus takes that as a reset).
    await h.engine.delete(id);
    await ran('gone');
    const again = await seriesOf('gone');
    assert.ok(again.includes('jobworker_jobs_started_total{queue="gone"} 1'), again.join('\n'));
    assert.ok(again.includes('jobworker_jobs_finished_total{queue="gone",status="succeeded"} 1'));
    assert.ok(again.includes('jobworker_job_start_latency_seconds_count{queue="gone"} 1'));
    assert.ok((await seriesOf('kept')).includes('jobworker_jobs_started_total{queue="kept"} 1'));
  });

  it('drops at a scrape the series of a queue forgotten where this server was not told (another node)', async () => {
    const id = await ran('elsewhere');
    assert.ok((await seriesOf('elsewhere')).length > 0);
    // Another opener of the database deletes the job (as another node of a shared store would):
    // its store forgets the queue, and this server's engine hears nothing of it.
    const other = await SqliteJobStore.open(join(h.dataDir, 'jobworker.db'));
    try {
      await other.deleteJob(id);
    } finally {
      await other.close();
    }
    assert.deepEqual(await seriesOf('elsewhere'), []);
  });
});
