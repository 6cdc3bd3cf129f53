import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SSE_RETRY_MS } from '../../src/api/rest/output-writers.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

interface OpenApiDocument {
  paths: Record<string, Record<string, unknown>>;
}

/**
 * The HTTP edges third-party clients run into (issue 11, part 5): HEAD on every GET route, 405
 * with `Allow` for a wrong method, query parameters typed as what they are, and the SSE stream's
 * `retry:` and its 204 once a client has seen the end.
 */
describe('REST HTTP edges', () => {
  let h: Harness;
  let a: AppHarness;
  let admin: Record<string, string>;
  /** A finished job of the admin's that printed `one\ntwo\n`. */
  let done: string;

  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    admin = { authorization: `Bearer ${await a.issue('admin', 'admin')}` };
    const job = await a.service.start(
      { user: 'admin', role: 'admin' },
      { command: 'printf', args: ['one\ntwo\n'] },
    );
    await h.engine.waitFor(job.id);
    done = job.id;
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  async function openApi(): Promise<OpenApiDocument> {
    return (await a.app.inject({ url: '/v1/openapi.json', headers: admin })).json() as OpenApiDocument;
  }

  describe('HEAD', () => {
    it('answers on every GET route with the status and headers of GET, and no body', async () => {
      const paths = (await openApi()).paths;
      const gets = Object.entries(paths)
        // GET /v1/events streams until the client leaves, which inject() cannot do: its HEAD is
        // compared with a real GET in rest-events.test.ts.
        .filter(([path, methods]) => 'get' in methods && path !== '/v1/events')
        .map(([path]) =>
          path
            .replace('{id}', done)
            .replace('{name}', 'default')
            .replace('/v1/jobs/resolve', `/v1/jobs/resolve?ref=${done}`),
        );
      assert.ok(gets.length >= 10, gets.join(' '));
      for (const url of gets) {
        const get = await a.app.inject({ method: 'GET', url, headers: admin });
        const head = await a.app.inject({ method: 'HEAD', url, headers: admin });
        assert.equal(head.statusCode, get.statusCode, url);
        assert.equal(head.body, '', `${url}: no body`);
        // Less those that only the body determines: its chunking and the trailers after it.
        const comparable = (headers: Record<string, unknown>) => {
          const { date: _d, trailer: _t, 'transfer-encoding': _e, ...rest } = headers;
          // /metrics changes between two requests (the GET itself is counted): not its length.
          if (url === '/metrics') delete rest['content-length'];
          return rest;
        };
        assert.deepEqual(comparable(head.headers), comparable(get.headers), url);
      }
    });

    it('answers /healthz without credentials, and the errors of GET without their body', async () => {
      const health = await a.app.inject({ method: 'HEAD', url: '/healthz' });
      assert.equal(health.statusCode, 200);
      assert.equal(health.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(health.body, '');
      const unknownJob = '0190d4a8-0000-7000-8000-000000000000';
      for (const [url, headers, status] of [
        ['/v1/jobs', {}, 401],
        [`/v1/jobs/${unknownJob}`, admin, 404],
        [`/v1/jobs/${unknownJob}/output`, admin, 404],
        [`/v1/jobs/${done}/output?cursor=99`, admin, 400],
        ['/v1/jobs?limit=0', admin, 400],
      ] as const) {
        const get = await a.app.inject({ method: 'GET', url, headers });
        const head = await a.app.inject({ method: 'HEAD', url, headers });
        assert.equal(get.statusCode, status, url);
        assert.equal(head.statusCode, status, url);
        assert.equal(head.body, '', url);
        assert.equal(head.headers['content-length'], get.headers['content-length'], url);
      }
    });

    it('on the output of a running job, answers at once, even with follow (it reads nothing)', async () => {
      const job = await a.service.start(
        { user: 'admin', role: 'admin' },
        { command: 'sleep', args: ['600'] },
      );
      try {
        await h.engine.untilStarted(job.id);
        for (const accept of ['*/*', 'text/event-stream']) {
          const head = await a.app.inject({
            method: 'HEAD',
            url: `/v1/jobs/${job.id}/output?follow=true`,
            headers: { ...admin, accept },
          });
          assert.equal(head.statusCode, 200);
          assert.equal(head.body, '');
          assert.equal(head.headers['x-jobworker-cursor'], '0');
          assert.equal(head.headers['x-jobworker-job-id'], job.id);
          assert.match(
            String(head.headers['content-type']),
            accept === '*/*' ? /octet-stream/ : /event-stream/,
          );
        }
      } finally {
        await a.service.stop({ user: 'admin', role: 'admin' }, job.id, { graceMs: 0 });
        await h.engine.waitFor(job.id);
      }
    });
  });

  describe('405', () => {
    it('answers a wrong method on a known path with 405, `Allow` and an error in our format', async () => {
      for (const [method, url, allow] of [
        ['DELETE', '/healthz', 'GET, HEAD'],
        ['PUT', '/v1/jobs', 'GET, HEAD, POST'],
        ['POST', `/v1/jobs/${done}`, 'DELETE, GET, HEAD'],
        ['GET', `/v1/jobs/${done}/stop`, 'POST'],
        ['PATCH', '/v1/queues/default', 'GET, HEAD, PUT'],
        ['OPTIONS', '/v1/openapi.json', 'GET, HEAD'],
      ] as const) {
        const res = await a.app.inject({ method, url, headers: admin });
        assert.equal(res.statusCode, 405, `${method} ${url}`);
        assert.equal(res.headers.allow, allow, `${method} ${url}`);
        const body = res.json() as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'METHOD_NOT_ALLOWED');
        assert.equal(
          body.error.message,
          `Expected the method of ${url} to be ${allow}, got ${method}`,
          `${method} ${url}`,
        );
      }
    });

    it('still answers 404 for a path no route has, and 401 before either without credentials', async () => {
      const missing = await a.app.inject({ method: 'GET', url: '/v1/nothing', headers: admin });
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.headers.allow, undefined);
      assert.equal((await a.app.inject({ method: 'DELETE', url: '/v1/jobs' })).statusCode, 401);
    });
  });

  describe('query parameters', () => {
    it('takes integers and booleans as such, and names a parameter that is neither', async () => {
      const page = await a.app.inject({ url: '/v1/jobs?limit=1', headers: admin });
      assert.equal(page.statusCode, 200);
      assert.equal((page.json() as { jobs: unknown[] }).jobs.length, 1);
      const out = await a.app.inject({
        url: `/v1/jobs/${done}/output?follow=true&stream=stdout`,
        headers: admin,
      });
      assert.equal(out.statusCode, 200);
      assert.equal(out.body, 'one\ntwo\n');
      assert.equal((await a.app.inject({ url: '/v1/audit?limit=2', headers: admin })).statusCode, 200);
      for (const [url, field, message] of [
        ['/v1/jobs?limit=ten', 'limit', 'Expected `limit` to be an integer, got `ten`'],
        ['/v1/jobs?limit=0', 'limit', 'Expected `limit` to be a number >= 1, got `0`'],
        ['/v1/jobs?limit=1001', 'limit', 'Expected `limit` to be a number <= 1000, got `1001`'],
        ['/v1/jobs?limit=1.5', 'limit', 'Expected `limit` to be an integer, got `1.5`'],
        ['/v1/audit?limit=-1', 'limit', 'Expected `limit` to be a number >= 1, got `-1`'],
        [`/v1/jobs/${done}/output?follow=yes`, 'follow', 'Expected `follow` to be a boolean, got `yes`'],
        [`/v1/jobs/${done}/output?follow=1`, 'follow', 'Expected `follow` to be a boolean, got `1`'],
      ] as const) {
        const res = await a.app.inject({ url, headers: admin });
        assert.equal(res.statusCode, 400, url);
        const { error } = res.json() as { error: { code: string; field: string; message: string } };
        assert.deepEqual(error, { code: 'VALIDATION_FAILED', field, message }, url);
      }
    });
  });

  describe('server-sent events', () => {
    const sse = { accept: 'text/event-stream' };

    it('start with `retry:`, and end with an `end` event whose id says it is the end', async () => {
      const res = await a.app.inject({
        url: `/v1/jobs/${done}/output?follow=true`,
        headers: { ...admin, ...sse },
      });
      assert.equal(res.statusCode, 200);
      assert.ok(res.body.startsWith(`retry: ${SSE_RETRY_MS}\n\n`), res.body);
      assert.match(res.body, /event: end\nid: 8\.end\ndata: .*"cursor":"8"/);
    });

    it('answer a reconnect after `end` with 204, so that an EventSource stops reconnecting', async () => {
      const res = await a.app.inject({
        url: `/v1/jobs/${done}/output?follow=true`,
        headers: { ...admin, ...sse, 'last-event-id': '8.end' },
      });
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, '');
      assert.equal(res.headers['x-jobworker-job-id'], done);
    });

    it('answer a reconnect after `end` with 204 for a job that reported progress too', async () => {
      const job = await a.service.start(
        { user: 'admin', role: 'admin' },
        { command: 'sh', args: ['-c', `echo '{"done": 1}' >> "$JOBWORKER_PROGRESS"; echo x`] },
      );
      const ended = await h.engine.waitFor(job.id);
      assert.equal(ended.progress?.done, 1);
      const first = await a.app.inject({
        url: `/v1/jobs/${job.id}/output?follow=true`,
        headers: { ...admin, ...sse },
      });
      assert.match(first.body, /event: progress\n[\s\S]*event: end\nid: 2\.end\n/);
      // Its progress comes first on every open: a reconnect after `end` must still be told to stop.
      const again = await a.app.inject({
        url: `/v1/jobs/${job.id}/output?follow=true`,
        headers: { ...admin, ...sse, 'last-event-id': '2.end' },
      });
      assert.equal(again.statusCode, 204);
      assert.equal(again.body, '');
    });

    it('give a reconnect at the end cursor that has not seen `end` the `end` event', async () => {
      const res = await a.app.inject({
        url: `/v1/jobs/${done}/output?follow=true`,
        headers: { ...admin, ...sse, 'last-event-id': '8' },
      });
      assert.equal(res.statusCode, 200);
      assert.doesNotMatch(res.body, /event: output/);
      assert.match(res.body, /event: end\nid: 8\.end\n/);
    });

    it('answer 204 after `end` without follow too, and 200 with the bytes after an earlier id', async () => {
      const spent = await a.app.inject({
        url: `/v1/jobs/${done}/output`,
        headers: { ...admin, ...sse, 'last-event-id': '8.end' },
      });
      assert.equal(spent.statusCode, 204);
      const rest = await a.app.inject({
        url: `/v1/jobs/${done}/output`,
        headers: { ...admin, ...sse, 'last-event-id': '4' },
      });
      assert.equal(rest.statusCode, 200);
      assert.match(rest.body, /event: output\nid: 8\n[\s\S]*event: end\nid: 8\.end\n/);
    });

    it('answer 200, not 204, after the `end` of a read of a job still running: it has more to come', async () => {
      const job = await a.service.start(
        { user: 'admin', role: 'admin' },
        { command: 'sleep', args: ['600'] },
      );
      try {
        await h.engine.untilStarted(job.id);
        const res = await a.app.inject({
          url: `/v1/jobs/${job.id}/output`,
          headers: { ...admin, ...sse, 'last-event-id': '0.end' },
        });
        assert.equal(res.statusCode, 200);
        assert.match(res.body, /^retry: \d+\n\nevent: end\nid: 0\.end\ndata: .*"status":"running"/);
      } finally {
        await a.service.stop({ user: 'admin', role: 'admin' }, job.id, { graceMs: 0 });
        await h.engine.waitFor(job.id);
      }
    });
  });
});
