import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ValidationError } from '../../src/core/errors.ts';
import { runServer } from '../../src/main.ts';
import { type ApiHarness, addUserToken, openApi, startJob, testServerOptions } from '../api/api-harness.ts';

/** The samples of a scrape: `name{labels}` → value, labels as the exposition writes them. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

async function scrape(h: ApiHarness, token = h.token): Promise<Map<string, number>> {
  const res = await h.api('/metrics', { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** One sample of a scrape; 0 when the series does not exist yet. */
const value = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

/** How much each sample grew from one scrape to the next. */
const deltaOf = (before: Map<string, number>, after: Map<string, number>) => (key: string) =>
  value(after, key) - value(before, key);

/** Runs each job to its end (its followed output ends with it), then makes one RPC call (`List`). */
async function runJobsAndAnRpc(h: ApiHarness, specs: readonly Record<string, unknown>[]): Promise<void> {
  for (const spec of specs) {
    const job = await startJob(h, spec);
    // The stream ends once the job has ended.
    await (await h.api(`/v1/jobs/${job.id}/output?follow=true`)).arrayBuffer();
  }
  const rpc = await h.api('/jobworker.v1.JobService/List', {
    body: {},
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(rpc.status, 200);
}

describe('GET /metrics', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { authLimits: { maxFailures: 10_000 } });
  });
  after(() => h.destroy());

  it('counts a known set of jobs: 3 that succeed and 2 that fail, in their queue', async () => {
    const before = await scrape(h);
    const jobs = [
      ...[1, 2, 3].map(() => ({ command: 'sh', args: ['-c', 'echo hello'], queue: 'mq' })),
      ...[1, 2].map(() => ({ command: 'sh', args: ['-c', 'echo oops >&2; exit 1'], queue: 'mq' })),
    ];
    await runJobsAndAnRpc(h, jobs);
    const afterScrape = await scrape(h);
    const delta = deltaOf(before, afterScrape);

    assert.equal(delta('jobworker_jobs{status="succeeded"}'), 3);
    assert.equal(delta('jobworker_jobs{status="failed"}'), 2);
    assert.equal(value(afterScrape, 'jobworker_jobs{status="running"}'), 0);
    assert.equal(delta('jobworker_jobs_started_total{queue="mq"}'), 5);
    assert.equal(delta('jobworker_jobs_finished_total{queue="mq",status="succeeded"}'), 3);
    assert.equal(delta('jobworker_jobs_finished_total{queue="mq",status="failed"}'), 2);
    assert.equal(delta('jobworker_job_start_latency_seconds_count{queue="mq"}'), 5);
    assert.equal(delta('jobworker_job_run_duration_seconds_count{queue="mq",status="succeeded"}'), 3);
    assert.equal(delta('jobworker_job_run_duration_seconds_count{queue="mq",status="failed"}'), 2);
    assert.equal(delta('jobworker_output_bytes_total{stream="stdout"}'), 3 * 'hello\n'.length);
    assert.equal(delta('jobworker_output_bytes_total{stream="stderr"}'), 2 * 'oops\n'.length);
    assert.equal(value(afterScrape, 'jobworker_queue_waiting{queue="mq"}'), 0);
    assert.equal(value(afterScrape, 'jobworker_queue_running{queue="mq"}'), 0);
    assert.equal(value(afterScrape, 'jobworker_node_running'), 0);
    assert.equal(value(afterScrape, 'jobworker_followers'), 0);
    assert.equal(value(afterScrape, 'jobworker_store_up'), 1);
    assert.ok(value(afterScrape, 'jobworker_spawner_starts_total') >= 1);
    // Requests by route pattern, never the raw URL (which holds job ids).
    assert.equal(
      delta(
        'jobworker_http_request_duration_seconds_count{transport="rest",method="POST",route="/v1/jobs",status="201"}',
      ),
      5,
    );
    assert.equal(
      delta(
        'jobworker_http_request_duration_seconds_count{transport="rest",method="GET",route="/v1/jobs/:id/output",status="200"}',
      ),
      5,
    );
    assert.equal(
      delta(
        'jobworker_http_request_duration_seconds_count{transport="rpc",method="POST",route="/jobworker.v1.JobService/List",status="200"}',
      ),
      1,
    );
    assert.ok(![...afterScrape.keys()].some((k) => /route="\/v1\/jobs\/[0-9a-f]{8}-/.test(k)));
    // Process metrics (prom-client's defaults).
    assert.ok(afterScrape.has('process_cpu_user_seconds_total'));
    assert.ok(afterScrape.has('nodejs_heap_size_used_bytes'));
  });

  it('counts each request once by its route, failures of its authentication and HEAD included, and unmatched ones apart', async () => {
    const job = await startJob(h, { command: 'true' });
    const before = await scrape(h);
    const get = (path: string, init: RequestInit = {}) =>
      fetch(h.url(path), init).then((res) => res.arrayBuffer().then(() => res.status));
    const auth = { authorization: `Bearer ${h.token}` };
    assert.equal(await get(`/v1/jobs/${job.id}`, { headers: auth }), 200);
    assert.equal(await get(`/v1/jobs/${job.id}`, { method: 'HEAD', headers: auth }), 200);
    assert.equal(await get('/v1/jobs'), 401);
    assert.equal(await get('/no/such/route'), 401);
    assert.equal(await get('/no/such/route', { headers: auth }), 404);
    assert.equal(await get(`/v1/jobs/${job.id}`, { method: 'PATCH', headers: auth }), 405);
    const grew = deltaOf(before, await scrape(h));
    const delta = (labels: string) => grew(`jobworker_http_request_duration_seconds_count{${labels}}`);
    assert.equal(delta('transport="rest",method="GET",route="/v1/jobs/:id",status="200"'), 1);
    assert.equal(delta('transport="rest",method="HEAD",route="/v1/jobs/:id",status="200"'), 1);
    assert.equal(delta('transport="rest",method="GET",route="/v1/jobs",status="401"'), 1);
    assert.equal(delta('transport="rest",method="GET",route="(unmatched)",status="401"'), 1);
    assert.equal(delta('transport="rest",method="GET",route="(unmatched)",status="404"'), 1);
    assert.equal(delta('transport="rest",method="PATCH",route="(unmatched)",status="405"'), 1);
  });

  it('answers admins and the metrics token only; the metrics token opens nothing else', async () => {
    const tokenFile = h.server.metricsTokenFile;
    assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
    const metricsToken = (await readFile(tokenFile, 'utf8')).trim();
    assert.match(metricsToken, /^jwm_/);
    await scrape(h, metricsToken);
    const as = (token: string | undefined, path = '/metrics') =>
      fetch(h.url(path), token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    const user = await addUserToken(h, 'mia');
    const viewer = await addUserToken(h, 'vic', 'viewer');
    const code = async (res: Response) => [
      res.status,
      ((await res.json()) as { error: { code: string } }).error.code,
    ];
    assert.deepEqual(await code(await as(undefined)), [401, 'UNAUTHENTICATED']);
    assert.deepEqual(await code(await as('jw_notatokennotatokennotatokennotatoken')), [
      401,
      'UNAUTHENTICATED',
    ]);
    assert.deepEqual(await code(await as(user)), [403, 'FORBIDDEN']);
    assert.deepEqual(await code(await as(viewer)), [403, 'FORBIDDEN']);
    assert.deepEqual(await code(await as(metricsToken, '/v1/jobs')), [401, 'UNAUTHENTICATED']);
    assert.deepEqual(await code(await as(metricsToken, '/v1/queues')), [401, 'UNAUTHENTICATED']);
  });
});

describe('GET /metrics, the first scrape', () => {
  it('counts what happened before it: jobs, requests and RPC calls since the start; event-loop delay from it on', async () => {
    // prom-client is loaded at the first scrape; the counts were kept from the server's start.
    const h = await openApi();
    try {
      await runJobsAndAnRpc(h, [
        { command: 'sh', args: ['-c', 'echo hello'], queue: 'early' },
        { command: 'sh', args: ['-c', 'exit 3'], queue: 'early' },
      ]);
      const first = await scrape(h);
      assert.equal(value(first, 'jobworker_jobs_started_total{queue="early"}'), 2);
      assert.equal(value(first, 'jobworker_jobs_finished_total{queue="early",status="succeeded"}'), 1);
      assert.equal(value(first, 'jobworker_jobs_finished_total{queue="early",status="failed"}'), 1);
      assert.equal(value(first, 'jobworker_job_start_latency_seconds_count{queue="early"}'), 2);
      assert.equal(
        value(first, 'jobworker_job_run_duration_seconds_count{queue="early",status="failed"}'),
        1,
      );
      assert.equal(value(first, 'jobworker_output_bytes_total{stream="stdout"}'), 'hello\n'.length);
      assert.equal(
        value(
          first,
          'jobworker_http_request_duration_seconds_count{transport="rest",method="POST",route="/v1/jobs",status="201"}',
        ),
        2,
      );
      assert.equal(
        value(
          first,
          'jobworker_http_request_duration_seconds_count{transport="rpc",method="POST",route="/jobworker.v1.JobService/List",status="200"}',
        ),
        1,
      );
      // Event-loop delay is measured from the first scrape on (its 10 ms timer would keep an idle
      // server awake): none yet, NaN, where an empty histogram would say a minimum of ~9.2e9 s.
      for (const gauge of ['min', 'max', 'mean', 'p50', 'p99']) {
        assert.ok(Number.isNaN(first.get(`nodejs_eventloop_lag_${gauge}_seconds`)), gauge);
      }
      assert.ok(value(first, 'process_cpu_seconds_total') > 0);
      // A scrape reads a delay once the measure has ticked twice (every 10 ms) since the one before,
      // which reset it: tried again after a little longer than that, a bounded number of times.
      let later = await scrape(h);
      for (let tries = 0; Number.isNaN(later.get('nodejs_eventloop_lag_min_seconds')); tries++) {
        assert.ok(tries < 40, 'a scrape with the event-loop delay measured');
        await delay(25);
        later = await scrape(h);
      }
      const min = value(later, 'nodejs_eventloop_lag_min_seconds');
      assert.ok(min > 0 && min < 60 && min <= value(later, 'nodejs_eventloop_lag_max_seconds'));
    } finally {
      await h.destroy();
    }
  });

  it("writes prom-client's default metrics, in their order, before the server's own", async () => {
    const h = await openApi();
    try {
      const res = await h.api('/metrics');
      const families = (await res.text()).split('\n').filter((line) => line.startsWith('# '));
      const defaults = new Registry();
      collectDefaultMetrics({ register: defaults });
      const expected = (await defaults.metrics()).split('\n').filter((line) => line.startsWith('# '));
      assert.deepEqual(families.slice(0, expected.length), expected);
      assert.ok(families.slice(expected.length).every((line) => /^# (HELP|TYPE) jobworker_/.test(line)));
    } finally {
      await h.destroy();
    }
  });
});

describe('serve --metrics-listen', () => {
  it('serves GET /metrics on a loopback address without credentials, and nothing else there', async () => {
    const h = await openApi(undefined, { metricsListen: '127.0.0.1:0' });
    try {
      const url = h.server.metricsUrl;
      assert.match(url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const res = await fetch(url!);
      assert.equal(res.status, 200);
      const samples = parse(await res.text());
      assert.equal(samples.get('jobworker_store_up'), 1);
      assert.equal((await fetch(url!.replace('/metrics', '/v1/jobs'))).status, 404);
    } finally {
      await h.destroy();
    }
  });

  it('answers only requests that name this machine: a page rebound to 127.0.0.1 cannot read it', async () => {
    const h = await openApi(undefined, { metricsListen: '127.0.0.1:0' });
    try {
      const url = new URL(h.server.metricsUrl!);
      /** GET /metrics with this Host header, through node:http (fetch sets its own Host). */
      const withHost = (host: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpRequest(
            { host: url.hostname, port: url.port, path: '/metrics', headers: { host } },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => {
                body += chunk;
              });
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            },
          );
          req.on('error', reject);
          req.end();
        });
      const rebound = await withHost(`evil.example:${url.port}`);
      assert.equal(rebound.status, 421);
      assert.doesNotMatch(rebound.body, /jobworker_/);
      for (const host of [`127.0.0.1:${url.port}`, `localhost:${url.port}`, `${hostname()}:${url.port}`]) {
        const res = await withHost(host);
        assert.equal(res.status, 200, host);
        assert.match(res.body, /jobworker_store_up 1/);
      }
    } finally {
      await h.destroy();
    }
  });

  it('a metrics address in use fails the start and leaves nothing behind: the data directory starts again', async () => {
    const blocker = createServer(() => {});
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const { port } = blocker.address() as AddressInfo;
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-metrics-busy-'));
    try {
      const options = {
        ...(await testServerOptions()),
        dataDir,
        listen: '127.0.0.1:0',
        logStream: new PassThrough(),
      };
      await assert.rejects(runServer({ ...options, metricsListen: `127.0.0.1:${port}` }), /EADDRINUSE/);
      const server = await runServer(options);
      assert.equal(server.metricsUrl, null);
      await server.close();
    } finally {
      blocker.close();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10 });
    }
  });

  it('refuses a metrics address off loopback, naming the option', async () => {
    await assert.rejects(
      runServer({ metricsListen: '0.0.0.0:9464', dataDir: '/nonexistent/never-made' }),
      (err: unknown) => err instanceof ValidationError && err.field === 'metricsListen',
    );
  });
});
