import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { HTTP_STATUS } from '../../src/api/rest/error-mapping.ts';
import type { AppHarness } from '../helpers/rest-app-harness.ts';
import { expectedOutcome, IDENTITIES, OPERATIONS, type Operation } from './authorization-table.ts';
import { type Fixture, type MatrixWorld, openMatrixWorld } from './matrix-world.ts';

interface RestCase {
  readonly operation: Operation;
  /** `body`: the token goes in the body as `token` (the workerctl design's action API), not in a header. */
  readonly tokenIn?: 'body';
  request(f: Fixture): Promise<{ url: string; body?: unknown }> | { url: string; body?: unknown };
  /** The answer when allowed: a status, and the code when the allowed answer is an error (state). */
  readonly ok: number | readonly [number, string];
  /** Undoes what an allowed call changed, so later cases see the server as it was. */
  cleanup?(a: AppHarness): Promise<void>;
  /**
   * An allowed call streams until the client leaves (`inject()` would wait forever): it is made
   * over a real connection and judged by its status and first bytes.
   */
  readonly stream?: true;
}

/**
 * Every REST route, as the app registers it, onto its operation. A route missing here fails the
 * test: a new route must say who may call it.
 */
const REST: Record<string, RestCase> = {
  'GET /healthz': { operation: 'health', request: () => ({ url: '/healthz' }), ok: 200 },
  'GET /v1/openapi.json': {
    operation: 'api:describe',
    request: () => ({ url: '/v1/openapi.json' }),
    ok: 200,
  },
  'POST /v1/jobs': {
    operation: 'job:submit',
    request: () => ({ url: '/v1/jobs', body: { command: 'true' } }),
    ok: 201,
  },
  'POST /run': { operation: 'job:run', request: () => ({ url: '/run', body: { command: 'true' } }), ok: 200 },
  'GET /v1/jobs': { operation: 'job:list', request: () => ({ url: '/v1/jobs' }), ok: 200 },
  'GET /v1/events': {
    operation: 'job:events',
    request: () => ({ url: '/v1/events' }),
    ok: 200,
    stream: true,
  },
  'GET /v1/jobs/resolve': {
    operation: 'job:resolve',
    request: (f) => ({ url: `/v1/jobs/resolve?ref=${f.job}` }),
    ok: 200,
  },
  'GET /v1/jobs/:id': { operation: 'job:get', request: (f) => ({ url: `/v1/jobs/${f.job}` }), ok: 200 },
  'GET /v1/jobs/:id/output': {
    operation: 'job:output',
    request: (f) => ({ url: `/v1/jobs/${f.job}/output` }),
    ok: 200,
  },
  'POST /v1/jobs/:id/stop': {
    operation: 'job:stop',
    request: (f) => ({ url: `/v1/jobs/${f.job}/stop`, body: {} }),
    ok: [409, 'ALREADY_FINISHED'],
  },
  'POST /v1/jobs/:id/pause': {
    operation: 'job:pause',
    request: (f) => ({ url: `/v1/jobs/${f.job}/pause` }),
    ok: [409, 'ILLEGAL_TRANSITION'],
  },
  'POST /v1/jobs/:id/resume': {
    operation: 'job:resume',
    request: (f) => ({ url: `/v1/jobs/${f.job}/resume` }),
    ok: [409, 'ILLEGAL_TRANSITION'],
  },
  'DELETE /v1/jobs/:id': {
    operation: 'job:delete',
    request: async (f) => ({ url: `/v1/jobs/${await f.freshJob()}` }),
    ok: 200,
  },
  'POST /v1/prune': {
    operation: 'jobs:prune',
    // Only jobs finished ten years ago: allowed, and deletes nothing the other cases need.
    request: () => ({ url: '/v1/prune', body: { olderThanMs: 10 * 365 * 86_400_000 } }),
    ok: 200,
  },
  'GET /v1/queues': { operation: 'queue:list', request: () => ({ url: '/v1/queues' }), ok: 200 },
  'GET /v1/queues/:name': { operation: 'queue:get', request: () => ({ url: '/v1/queues/matrix' }), ok: 200 },
  'PUT /v1/queues/:name': {
    operation: 'queue:set',
    request: () => ({ url: '/v1/queues/matrix', body: { concurrency: 3 } }),
    ok: 200,
  },
  'POST /v1/queues/:name/pause': {
    operation: 'queue:pause',
    request: () => ({ url: '/v1/queues/matrix/pause' }),
    ok: 200,
  },
  'POST /v1/queues/:name/resume': {
    operation: 'queue:resume',
    request: () => ({ url: '/v1/queues/matrix/resume' }),
    ok: 200,
  },
  'GET /v1/drain': { operation: 'server:drain-state', request: () => ({ url: '/v1/drain' }), ok: 200 },
  'GET /v1/nodes': { operation: 'server:nodes', request: () => ({ url: '/v1/nodes' }), ok: 200 },
  'POST /v1/drain': {
    operation: 'server:drain',
    request: () => ({ url: '/v1/drain', body: { wait: false } }),
    ok: 200,
    cleanup: async (a) => {
      await a.service.undrain({ user: 'admin', role: 'admin' });
    },
  },
  'POST /v1/undrain': { operation: 'server:undrain', request: () => ({ url: '/v1/undrain' }), ok: 200 },
  'GET /v1/users': { operation: 'user:list', request: () => ({ url: '/v1/users' }), ok: 200 },
  'POST /v1/users': {
    operation: 'user:add',
    request: (f) => ({ url: '/v1/users', body: { name: f.newName(), role: 'user' } }),
    ok: 201,
  },
  'PATCH /v1/users/:name': {
    operation: 'user:set',
    request: async (f) => ({ url: `/v1/users/${await f.freshUser()}`, body: { role: 'viewer' } }),
    ok: 200,
  },
  'DELETE /v1/users/:name': {
    operation: 'user:remove',
    request: async (f) => ({ url: `/v1/users/${await f.freshUser()}` }),
    ok: 200,
  },
  'GET /v1/tokens': { operation: 'token:list', request: () => ({ url: '/v1/tokens' }), ok: 200 },
  'POST /v1/tokens': {
    operation: 'token:create',
    request: async (f) => ({ url: '/v1/tokens', body: { user: await f.freshUser() } }),
    ok: 201,
  },
  'DELETE /v1/tokens/:id': {
    operation: 'token:revoke',
    request: async (f) => ({ url: `/v1/tokens/${await f.freshToken()}` }),
    ok: 200,
  },
  'GET /v1/audit': { operation: 'audit:list', request: () => ({ url: '/v1/audit' }), ok: 200 },
  'GET /v1/certs': { operation: 'cert:list', request: () => ({ url: '/v1/certs' }), ok: 200 },
  'POST /v1/certs': {
    operation: 'cert:issue',
    request: () => ({ url: '/v1/certs', body: { user: 'bob', days: 1 } }),
    ok: 201,
  },
  'POST /v1/certs/:serial/revoke': {
    operation: 'cert:revoke',
    request: async (f) => ({ url: `/v1/certs/${await f.freshCertificate()}/revoke` }),
    ok: 200,
  },
  'GET /v1/jobs/:id/result': {
    operation: 'job:result',
    request: (f) => ({ url: `/v1/jobs/${f.job}/result` }),
    ok: 200,
  },
  'GET /v1/tasks': { operation: 'task:list', request: () => ({ url: '/v1/tasks' }), ok: 200 },
  'POST /v1/tasks/:name/runs': {
    operation: 'task:run',
    request: () => ({ url: '/v1/tasks/noop/runs', body: {} }),
    ok: 201,
  },
  'POST /v1/tasks/reload': {
    operation: 'tasks:reload',
    request: () => ({ url: '/v1/tasks/reload' }),
    ok: 200,
  },
  // The async task manager design's routes (docs/tasks.md).
  'POST /start/:task': { operation: 'task:run', request: () => ({ url: '/start/noop' }), ok: 201 },
  'POST /cancel': {
    operation: 'job:stop',
    request: (f) => ({ url: `/cancel?id=${f.job}` }),
    ok: [409, 'ALREADY_FINISHED'],
  },
  'GET /status': { operation: 'job:get', request: (f) => ({ url: `/status?id=${f.job}` }), ok: 200 },
  'GET /result': { operation: 'job:result', request: (f) => ({ url: `/result?id=${f.job}` }), ok: 200 },
  'GET /metrics': { operation: 'metrics:scrape', request: () => ({ url: '/metrics' }), ok: 200 },
  'GET /v1/webhooks': { operation: 'webhook:list', request: () => ({ url: '/v1/webhooks' }), ok: 200 },
  'POST /v1/webhooks': {
    operation: 'webhook:add',
    request: () => ({ url: '/v1/webhooks', body: { url: 'https://hooks.example.com/jobworker' } }),
    ok: 201,
  },
  'DELETE /v1/webhooks/:id': {
    operation: 'webhook:remove',
    request: async (f) => ({ url: `/v1/webhooks/${await f.freshWebhook()}` }),
    ok: 200,
  },
  'GET /v1/webhooks/deliveries': {
    operation: 'webhook:deliveries',
    request: () => ({ url: '/v1/webhooks/deliveries' }),
    ok: 200,
  },
  ...compatRows(),
};

/** What the cases read of an answer, from `inject()` or from a real connection. */
interface Answer {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json(): unknown;
}

/**
 * One request over a real TLS connection that presents a client certificate and no token: only a
 * handshake carries a certificate, which `inject()` cannot make.
 */
function overTls(
  base: string,
  method: string,
  path: string,
  body: unknown,
  pems: { cert?: string; key?: string; ca: string },
  options: { token?: string | undefined; stream?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, base),
      {
        method,
        ...pems,
        agent: false,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          // A 200 stream never ends by itself: its first bytes are the answer.
          if (options.stream && res.statusCode === 200) {
            const text = Buffer.concat(chunks).toString('utf8');
            req.destroy();
            resolve({ statusCode: 200, headers: res.headers, body: text, json: () => JSON.parse(text) });
          }
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            statusCode: res.statusCode ?? 0,
            headers: res.headers,
            body: text,
            json: () => JSON.parse(text),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * The original designs' routes (docs/compat.md): each Job Worker path with and without its
 * trailing slash, and the workerctl action API once per action on each of its two paths. A key's
 * text after the route (`POST /api stop`) names the case; the route is its first two words.
 */
function compatRows(): Record<string, RestCase> {
  const rows: Record<string, RestCase> = {};
  for (const slash of ['', '/']) {
    rows[`GET /health${slash}`] = {
      operation: 'health',
      request: () => ({ url: `/health${slash}` }),
      ok: 200,
    };
    rows[`POST /start${slash}`] = {
      operation: 'job:submit',
      request: () => ({ url: `/start${slash}`, body: { command: 'true' } }),
      ok: 200,
    };
    rows[`POST /stop${slash}`] = {
      operation: 'job:stop',
      request: (f) => ({ url: `/stop${slash}`, body: { jobId: f.job } }),
      ok: [409, 'ALREADY_FINISHED'],
    };
    rows[`GET /status/:jobId${slash}`] = {
      operation: 'job:get',
      request: (f) => ({ url: `/status/${f.job}${slash}` }),
      ok: 200,
    };
  }
  for (const path of ['/api', '/']) {
    rows[`POST ${path} start`] = {
      operation: 'job:submit',
      tokenIn: 'body',
      request: () => ({ url: path, body: { action: 'start', command: 'true' } }),
      ok: 200,
    };
    rows[`POST ${path} stop`] = {
      operation: 'job:stop',
      tokenIn: 'body',
      request: (f) => ({ url: path, body: { action: 'stop', jobID: f.job } }),
      ok: [409, 'ALREADY_FINISHED'],
    };
    rows[`POST ${path} status`] = {
      operation: 'job:get',
      tokenIn: 'body',
      request: (f) => ({ url: path, body: { action: 'status', jobID: f.job } }),
      ok: 200,
    };
  }
  return rows;
}

/** The route of a row: its method and path, without the case name some rows add. */
const routeOf = (key: string) => key.split(' ').slice(0, 2).join(' ');

/** The error code of an answer: REST v1's `error.code`, or the compat routes' header. */
function codeOf(res: { headers: Record<string, unknown>; json(): unknown }): string | undefined {
  const header = res.headers['x-jobworker-error-code'];
  if (typeof header === 'string') return header;
  if (!String(res.headers['content-type'] ?? '').startsWith('application/json')) return undefined;
  // A job's result may be any JSON value, `null` included.
  const error = (res.json() as { error?: unknown } | null)?.error;
  return typeof error === 'object' && error !== null ? (error as { code?: string }).code : undefined;
}

describe('the authorization matrix over REST', () => {
  let w: MatrixWorld;
  // Read in the cases below; set once the world is open.
  let a: AppHarness;
  let tokens: MatrixWorld['tokens'];
  let aliceCertificate: MatrixWorld['aliceCertificate'];

  before(async () => {
    w = await openMatrixWorld();
    ({ a, tokens, aliceCertificate } = w);
  });
  after(() => w.close());

  it('has a row for every route of the app, and no row for a route it does not have', async () => {
    const res = await a.app.inject({
      method: 'GET',
      url: '/v1/openapi.json',
      headers: { authorization: `Bearer ${tokens.admin}` },
    });
    const paths = (res.json() as { paths: Record<string, Record<string, unknown>> }).paths;
    const routes = Object.entries(paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`),
    );
    assert.deepEqual([...routes].sort(), [...new Set(Object.keys(REST).map(routeOf))].sort());
    for (const route of routes)
      assert.ok(a.app.hasRoute({ method: route.split(' ')[0]!, url: route.split(' ')[1]! }));
  });

  for (const [route, rest] of Object.entries(REST)) {
    it(`${route} (${rest.operation}: ${OPERATIONS[rest.operation]})`, async () => {
      const [method] = route.split(' ') as [string];
      const send = (token: string | undefined, url: string, body: unknown) => {
        const payload =
          rest.tokenIn === 'body' && token !== undefined ? { ...(body as object), token } : body;
        return a.app.inject({
          method: method as 'GET',
          url,
          headers: {
            ...(token === undefined || rest.tokenIn === 'body' ? {} : { authorization: `Bearer ${token}` }),
            ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
        });
      };
      for (const identity of IDENTITIES) {
        const fixture = w.fixtureFor(identity);
        const { url, body } = await rest.request(fixture);
        const token = tokens[identity];
        const res =
          identity === 'mTLS user'
            ? await overTls(a.url!, method, url, body, aliceCertificate, { stream: rest.stream === true })
            : rest.stream
              ? await overTls(a.url!, method, url, body, { ca: a.caPem }, { token, stream: true })
              : await send(token, url, body);
        const outcome = expectedOutcome(OPERATIONS[rest.operation], identity);
        const [status, code] =
          outcome === 'ok'
            ? typeof rest.ok === 'number'
              ? [rest.ok]
              : rest.ok
            : [HTTP_STATUS[outcome], outcome];
        const got = codeOf(res);
        assert.equal(res.statusCode, status, `${route} as ${identity}: ${res.body.slice(0, 200)}`);
        if (code !== undefined) assert.equal(got, code, `${route} as ${identity}`);
        if (outcome === 'NOT_FOUND') {
          // Exactly like an unknown id: the same answer with only the id changed.
          const unknown = '01900000-0000-7000-8000-000000000000';
          // The id may be in the path or in the body (the compat routes).
          const probeBody =
            body === undefined
              ? undefined
              : JSON.parse(JSON.stringify(body).replaceAll(fixture.job, unknown));
          const probe = await send(token, url.replace(fixture.job, unknown), probeBody);
          assert.equal(probe.statusCode, res.statusCode);
          assert.equal(
            probe.body.replaceAll(unknown, fixture.job),
            res.body,
            `${route}: another's job = unknown id`,
          );
        }
        if (method === 'GET') {
          // Its HEAD (not a row of its own: HEAD is every GET's) answers as GET does, for everyone.
          const head =
            identity === 'mTLS user'
              ? await overTls(a.url!, 'HEAD', url, undefined, aliceCertificate)
              : await a.app.inject({
                  method: 'HEAD',
                  url,
                  headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
                });
          assert.equal(head.statusCode, res.statusCode, `HEAD of ${route} as ${identity}`);
        }
        if (outcome === 'ok') await rest.cleanup?.(a);
      }
    });
  }
});
