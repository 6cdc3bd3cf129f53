import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ApiHarness, addUserToken, type JobJson, openApi, rawGet, startJob } from './api-harness.ts';

/** Every authenticated route, with a request that would succeed given a good token. */
function routes(jobId: string): { method: string; path: string; body?: unknown }[] {
  return [
    { method: 'POST', path: '/v1/jobs', body: { command: 'true' } },
    { method: 'GET', path: '/v1/jobs' },
    { method: 'GET', path: `/v1/jobs/${jobId}` },
    { method: 'POST', path: `/v1/jobs/${jobId}/stop`, body: {} },
    { method: 'GET', path: `/v1/jobs/${jobId}/output` },
    { method: 'POST', path: '/run', body: { command: 'true' } },
    { method: 'GET', path: '/v1/openapi.json' },
    { method: 'POST', path: `/v1/jobs/${jobId}/pause` },
    { method: 'POST', path: `/v1/jobs/${jobId}/resume` },
    { method: 'GET', path: '/v1/queues' },
    { method: 'GET', path: '/v1/queues/default' },
    { method: 'PUT', path: '/v1/queues/default', body: {} },
    { method: 'POST', path: '/v1/queues/default/pause' },
    { method: 'POST', path: '/v1/queues/default/resume' },
    { method: 'GET', path: '/v1/drain' },
    { method: 'POST', path: '/v1/drain', body: {} },
    { method: 'POST', path: '/v1/undrain' },
    { method: 'DELETE', path: `/v1/jobs/${jobId}` },
    { method: 'GET', path: '/v1/jobs/resolve' },
    { method: 'POST', path: '/v1/prune', body: {} },
  ];
}

const JOB_FIELDS = [
  'id',
  'name',
  'command',
  'args',
  'shell',
  'cwd',
  'timeoutMs',
  'labels',
  'status',
  'exitCode',
  'signal',
  'reason',
  'owner',
  'pid',
  'createdAt',
  'startedAt',
  'finishedAt',
  'stopRequestedAt',
  'outputBytes',
  'queue',
  'priority',
  'runAt',
  'after',
  'attempt',
  'maxAttempts',
  'retryOf',
  'retriedAs',
  'dedupeKey',
  'dedupeScope',
  'pausedAt',
  'node',
  'waitingFor',
  'account',
  'limits',
  'usage',
  'task',
  'params',
  'resultError',
  'progress',
];

describe('REST API routes', () => {
  let h: ApiHarness;
  let aliceToken = '';
  before(async () => {
    // This test presents hundreds of bad credentials from one address on purpose.
    h = await openApi(undefined, { authLimits: { maxFailures: 10_000 } });
    aliceToken = await addUserToken(h, 'alice');
  });
  after(() => h.destroy());

  it('writes the admin token file with mode 0600 and stores only hashes', async () => {
    assert.equal(h.server.adminTokenFile, join(h.dataDir, 'admin.token'));
    const info = await stat(h.server.adminTokenFile);
    assert.equal(info.mode & 0o777, 0o600);
    assert.match(h.token, /^jw_[A-Za-z0-9_-]{43}$/, '256 random bits');
    // Tokens live in the job database (and its write-ahead log), as SHA-256 only.
    for (const file of ['jobworker.db', 'jobworker.db-wal']) {
      const stored = await readFile(join(h.dataDir, file)).catch(() => Buffer.alloc(0));
      assert.ok(!stored.includes(h.token) && !stored.includes(aliceToken), `no token in clear in ${file}`);
    }
  });

  it('GET /healthz answers without credentials', async () => {
    const res = await fetch(h.url('/healthz'));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('refuses every other route without a token, with a wrong one, or with one in the query string', async () => {
    const job = await startJob(h, { command: 'true' });
    for (const route of routes(job.id)) {
      const init = (headers: Record<string, string>) => ({
        method: route.method,
        headers: { ...headers, ...(route.body ? { 'content-type': 'application/json' } : {}) },
        ...(route.body ? { body: JSON.stringify(route.body) } : {}),
      });
      const cases: [string, string, Record<string, string>][] = [
        ['no token', route.path, {}],
        ['wrong token', route.path, { authorization: 'Bearer jw_wrong' }],
        ['another scheme', route.path, { authorization: `Basic ${h.token}` }],
        ['token in query', `${route.path}?token=${h.token}`, {}],
        [
          'access_token in query, good header',
          `${route.path}?access_token=${h.token}`,
          { authorization: `Bearer ${h.token}` },
        ],
      ];
      for (const [what, path, headers] of cases) {
        const res = await fetch(h.url(path), init(headers));
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(res.status, 401, `${route.method} ${route.path}: ${what}`);
        assert.equal(body.error.code, 'UNAUTHENTICATED');
        assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      }
    }
    // Nothing about a token reaches the log.
    const log = h.logs.join('\n');
    assert.ok(!log.includes(h.token), 'the admin token is never logged');
    assert.match(log, /token=\[redacted\]/);
  });

  it('authenticates every authenticated route the OpenAPI document lists, its HEAD twin, and requests no route matches', async () => {
    // Each route gets its own authentication hook when it is registered (an `onRoute` hook): this
    // walks the OpenAPI document, which every API route is in, rather than a list kept by hand.
    // The dashboard's public files: test/api/rest-dashboard-files.test.ts; RPC: test/api/rpc.
    const job = await startJob(h, { command: 'true' });
    const { body: doc } = await h.json<{
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    }>('/v1/openapi.json');
    let checked = 0;
    for (const [template, operations] of Object.entries(doc.paths)) {
      const path = template.replace(/\{[^}]+\}/g, (param) => (param === '{id}' ? job.id : 'default'));
      for (const [method, operation] of Object.entries(operations)) {
        if (Array.isArray(operation.security) && operation.security.length === 0) continue;
        // POST /api and POST / (the workerctl design) take their token from the body, checked by
        // their handler once the body is valid: test/compat covers them.
        if (template === '/api' || template === '/') continue;
        for (const verb of method === 'get' ? ['GET', 'HEAD'] : [method.toUpperCase()]) {
          const res = await fetch(h.url(path), { method: verb });
          await res.arrayBuffer();
          assert.equal(res.status, 401, `${verb} ${template} without a token`);
          checked++;
        }
      }
    }
    assert.ok(checked > 40, `checked ${checked} operations`);
    for (const [method, path] of [
      ['GET', '/no/such/route'],
      ['POST', '/no/such/route'],
      ['DELETE', '/healthz'],
      ['PATCH', `/v1/jobs/${job.id}`],
    ] as const) {
      const res = await fetch(h.url(path), { method });
      assert.equal(res.status, 401, `${method} ${path} (no route) without a token`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    }
  });

  it('POST /v1/jobs starts a job and answers 201 with exactly the job fields', async () => {
    const res = await h.api('/v1/jobs', {
      body: {
        command: 'echo',
        args: ['hi'],
        name: 'greet',
        labels: { team: 'a' },
        env: { SECRET: 'x' },
        cwd: '/tmp',
      },
    });
    assert.equal(res.status, 201);
    const job = (await res.json()) as JobJson;
    assert.deepEqual(Object.keys(job).sort(), [...JOB_FIELDS].sort());
    assert.equal(job.command, 'echo');
    assert.deepEqual(job.args, ['hi']);
    assert.equal(job.name, 'greet');
    assert.deepEqual(job.labels, { team: 'a' });
    assert.equal(job.cwd, '/tmp');
    assert.equal(job.owner, 'admin');
    assert.equal(job.shell, false);
    assert.match(job.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(!JSON.stringify(job).includes('SECRET'), 'the environment is never shown');
  });

  it('GET /v1/jobs/{id} answers the job; GET /v1/jobs lists newest first with filters and paging', async () => {
    const a = await startJob(h, { command: 'true', name: 'list-a', labels: { batch: 'x' } });
    const b = await startJob(h, { command: 'true', name: 'list-b', labels: { batch: 'x' } });
    const c = await startJob(h, { command: 'false', name: 'list-c', labels: { batch: 'y' } });
    for (const job of [a, b, c]) await h.api(`/v1/jobs/${job.id}/output?follow=true`).then((r) => r.text());

    const one = await h.json<JobJson>(`/v1/jobs/${c.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.status, 'failed');
    assert.equal(one.body.exitCode, 1);
    assert.equal(one.body.reason, 'exited with code 1');
    assert.ok(one.body.finishedAt !== null);

    const page1 = await h.json<{ jobs: JobJson[]; nextCursor: string | null }>(
      '/v1/jobs?label=batch%3Dx&limit=1',
    );
    assert.equal(page1.status, 200);
    assert.deepEqual(
      page1.body.jobs.map((j) => j.id),
      [b.id],
    );
    assert.ok(page1.body.nextCursor);
    const page2 = await h.json<{ jobs: JobJson[]; nextCursor: string | null }>(
      `/v1/jobs?label=batch%3Dx&limit=1&cursor=${page1.body.nextCursor}`,
    );
    assert.deepEqual(
      page2.body.jobs.map((j) => j.id),
      [a.id],
    );
    assert.equal(page2.body.nextCursor, null);

    const failed = await h.json<{ jobs: JobJson[] }>('/v1/jobs?status=failed,stopped&name=list-c');
    assert.deepEqual(
      failed.body.jobs.map((j) => j.id),
      [c.id],
    );
    const all = await h.json<{ jobs: JobJson[] }>('/v1/jobs?limit=1000');
    const ids = all.body.jobs.map((j) => j.id);
    assert.deepEqual(ids, [...ids].sort().reverse(), 'newest first');
  });

  it('POST /v1/jobs/{id}/stop answers 202 while stopping, then 409 with the job once finished', async () => {
    const job = await startJob(h, { command: 'sh', args: ['-c', 'echo ready; exec sleep 60'] });
    // A follow streams once the job has started (the 201 came when it was admitted).
    const auth = { authorization: `Bearer ${h.token}` };
    await rawGet(h.url(`/v1/jobs/${job.id}/output?follow=true`), auth, (body) => body.includes('ready'));
    const stopping = await h.json<JobJson>(`/v1/jobs/${job.id}/stop`, { body: { graceMs: 5000 } });
    assert.equal(stopping.status, 202);
    assert.equal(stopping.body.id, job.id);
    assert.ok(stopping.body.stopRequestedAt !== null);
    // The follow ends with the job's end.
    const end = await rawGet(h.url(`/v1/jobs/${job.id}/output?follow=true`), {
      authorization: `Bearer ${h.token}`,
    });
    assert.equal(end.trailers['x-jobworker-status'], 'stopped');

    const again = await h.json<{ error: { code: string; message: string }; job: JobJson }>(
      `/v1/jobs/${job.id}/stop`,
      {
        method: 'POST',
      },
    );
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'ALREADY_FINISHED');
    assert.equal(again.body.job.id, job.id);
    assert.equal(again.body.job.status, 'stopped');
    assert.match(again.body.job.reason ?? '', /^stopped by admin/);
  });

  it('GET /v1/jobs/{id}/output returns what exists and ends', async () => {
    const job = await startJob(h, { command: 'sh', args: ['-c', 'echo out; echo err >&2'] });
    await h.api(`/v1/jobs/${job.id}/output?follow=true`).then((r) => r.text());
    const all = await h.api(`/v1/jobs/${job.id}/output`);
    assert.equal(all.status, 200);
    assert.equal(all.headers.get('content-type'), 'application/octet-stream');
    assert.equal(all.headers.get('x-jobworker-cursor'), '0');
    assert.equal(await all.text(), 'out\nerr\n');
    assert.equal(await (await h.api(`/v1/jobs/${job.id}/output?stream=stderr`)).text(), 'err\n');
    assert.equal(await (await h.api(`/v1/jobs/${job.id}/output?stream=stdout&cursor=1`)).text(), 'ut\n');
  });

  it('POST /run waits for the command and answers its output as text, recorded in history', async () => {
    const python = await startJob(h, { command: 'sh', args: ['-c', 'command -v python3'] });
    await h.api(`/v1/jobs/${python.id}/output?follow=true`).then((r) => r.text());
    const hasPython = (await h.json<JobJson>(`/v1/jobs/${python.id}`)).body.exitCode === 0;
    const spec = hasPython
      ? { command: 'python3', args: ['-c', 'print("hello world")'] }
      : { command: 'echo', args: ['hello world'] };
    const res = await h.api('/run', { body: spec });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(await res.text(), 'hello world\n');
    assert.equal(res.headers.get('x-jobworker-status'), 'succeeded');
    assert.equal(res.headers.get('x-jobworker-exit-code'), '0');
    const id = res.headers.get('x-jobworker-job-id')!;
    assert.equal((await h.json<JobJson>(`/v1/jobs/${id}`)).body.status, 'succeeded');

    const failing = await h.api('/run', { body: { command: 'sh', args: ['-c', 'echo oops >&2; exit 3'] } });
    assert.equal(failing.status, 200);
    assert.equal(await failing.text(), 'oops\n');
    assert.equal(failing.headers.get('x-jobworker-status'), 'failed');
    assert.equal(failing.headers.get('x-jobworker-exit-code'), '3');

    const missing = await h.json<{ error: { code: string; field: string } }>('/run', {
      body: { command: 'no-such-command-jw' },
    });
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.body.error.code, 'COMMAND_NOT_FOUND');
    assert.equal(missing.body.error.field, 'command');
  });

  it('GET /v1/openapi.json documents every route from the route schemas', async () => {
    const { status, body } = await h.json<{
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown[]; parameters?: { name: string }[] }>>;
      components: { schemas: Record<string, { required?: string[] }> };
    }>('/v1/openapi.json');
    assert.equal(status, 200);
    assert.equal(body.openapi, '3.1.0');
    assert.deepEqual(
      Object.keys(body.paths).sort(),
      [
        '/healthz',
        '/run',
        // The original designs' routes (docs/compat.md).
        '/',
        '/api',
        '/health',
        '/health/',
        '/start',
        '/start/',
        '/status/{jobId}',
        '/status/{jobId}/',
        '/stop',
        '/stop/',
        // The async task manager design's (docs/tasks.md).
        '/start/{task}',
        '/cancel',
        '/status',
        '/result',
        '/v1/tasks',
        '/v1/tasks/reload',
        '/v1/tasks/{name}/runs',
        '/v1/jobs/{id}/result',
        '/v1/certs',
        '/v1/certs/{serial}/revoke',
        '/v1/drain',
        '/v1/events',
        '/v1/jobs',
        '/v1/jobs/resolve',
        '/v1/jobs/{id}',
        '/v1/jobs/{id}/output',
        '/v1/jobs/{id}/pause',
        '/v1/jobs/{id}/resume',
        '/v1/jobs/{id}/stop',
        '/v1/openapi.json',
        '/v1/prune',
        '/v1/queues',
        '/v1/queues/{name}',
        '/v1/queues/{name}/pause',
        '/v1/queues/{name}/resume',
        '/v1/audit',
        '/v1/tokens',
        '/v1/tokens/{id}',
        '/v1/undrain',
        '/v1/nodes',
        '/v1/users',
        '/v1/users/{name}',
        // docs/webhooks.md, docs/metrics.md
        '/v1/webhooks',
        '/v1/webhooks/{id}',
        '/v1/webhooks/deliveries',
        '/metrics',
      ].sort(),
    );
    assert.deepEqual(Object.keys(body.paths['/v1/users/{name}'] ?? {}).sort(), ['delete', 'patch']);
    for (const schema of ['User', 'Token', 'AuditEntry']) assert.ok(body.components.schemas[schema], schema);
    assert.deepEqual(Object.keys(body.paths['/v1/queues/{name}'] ?? {}).sort(), ['get', 'put']);
    assert.deepEqual(Object.keys(body.paths['/v1/drain'] ?? {}).sort(), ['get', 'post']);
    assert.deepEqual(Object.keys(body.paths['/v1/jobs/{id}'] ?? {}).sort(), ['delete', 'get']);
    assert.ok(body.components.schemas.Queue, 'the Queue schema is a component');
    assert.deepEqual(body.paths['/healthz']?.get?.security, []);
    assert.deepEqual(body.components.schemas.Job?.required?.slice().sort(), [...JOB_FIELDS].sort());
    const output = body.paths['/v1/jobs/{id}/output']?.get?.parameters?.map((p) => p.name);
    assert.deepEqual(output, ['id', 'stream', 'cursor', 'follow', 'Last-Event-ID']);
    assert.ok(!JSON.stringify(body).includes('"Job#"'), 'references point into components');
  });

  it("a user sees and stops only its own jobs; another user's job answers exactly like an unknown id", async () => {
    const alice = { authorization: `Bearer ${aliceToken}` };
    const mine = await h.json<JobJson>('/v1/jobs', {
      body: { command: 'sleep', args: ['60'] },
      headers: alice,
    });
    assert.equal(mine.status, 201);
    assert.equal(mine.body.owner, 'alice');
    const adminJob = await startJob(h, { command: 'true' });

    const unknownId = `${adminJob.id.slice(0, -4)}0000`;
    for (const [method, suffix] of [
      ['GET', ''],
      ['POST', '/stop'],
      ['GET', '/output'],
    ] as const) {
      const theirs = await h.api(`/v1/jobs/${adminJob.id}${suffix}`, { method, headers: alice });
      const unknown = await h.api(`/v1/jobs/${unknownId}${suffix}`, { method, headers: alice });
      assert.equal(theirs.status, 404);
      assert.equal(unknown.status, 404);
      const a = (await theirs.json()) as { error: { code: string; message: string } };
      const b = (await unknown.json()) as { error: { code: string; message: string } };
      assert.equal(a.error.code, 'NOT_FOUND');
      assert.equal(a.error.message.replace(adminJob.id, 'ID'), b.error.message.replace(unknownId, 'ID'));
    }
    const listed = await h.json<{ jobs: JobJson[] }>('/v1/jobs?limit=1000', { headers: alice });
    assert.deepEqual(
      listed.body.jobs.map((j) => j.owner),
      ['alice'],
    );
    // The admin sees and stops everybody's jobs.
    assert.equal((await h.json<JobJson>(`/v1/jobs/${mine.body.id}`)).body.owner, 'alice');
    const stopped = await h.json<JobJson>(`/v1/jobs/${mine.body.id}/stop`, { body: { graceMs: 0 } });
    assert.equal(stopped.status, 202);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await h.json<{ error: { code: string } }>('/v2/nothing');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'NOT_FOUND');
  });

  it('refuses --insecure-http on a non-loopback address, saying why', async () => {
    const { runServer } = await import('../../src/main.ts');
    await assert.rejects(
      runServer({ listen: '0.0.0.0:0', dataDir: h.dataDir, insecureHttp: true }),
      (err: Error & { field?: string }) => {
        assert.equal(err.field, 'insecureHttp');
        assert.match(
          err.message,
          /Refusing to serve plain HTTP on 0\.0\.0\.0:0: --insecure-http is allowed only on a loopback/,
        );
        return true;
      },
    );
  });
});
