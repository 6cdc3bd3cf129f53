import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { JobService } from '../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { WebhookService } from '../../src/api/rpc/gen/jobworker/v1/webhook_service_pb.ts';
import { type ApiHarness, addUserToken, type JobJson, openApi, startJob } from '../api/api-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

const DOCS = new URL('../../docs/webhooks.md', import.meta.url);

type Verify = (header: string, rawBody: string, secret: string, nowMs?: number) => boolean;

/** The verification snippet of docs/webhooks.md, run as written. */
async function docsVerifier(): Promise<Verify> {
  const text = await readFile(DOCS, 'utf8');
  const block = /<!-- verify:start -->\s*```js\n([\s\S]*?)```\s*<!-- verify:end -->/.exec(text)?.[1];
  assert.ok(block, 'docs/webhooks.md has the verification snippet');
  const dir = await mkdtemp(join(tmpdir(), 'jw-verify-'));
  const file = join(dir, 'verify.mjs');
  await writeFile(file, block);
  try {
    return ((await import(file)) as { verifyJobworkerSignature: Verify }).verifyJobworkerSignature;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Delivery {
  id: string;
  event: string;
  jobId: string;
  webhookId: string | null;
  url: string;
  status: string;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
}

async function waitForJob(h: ApiHarness, id: string): Promise<JobJson> {
  // The output stream ends once the job has ended: an event, not a poll.
  await (await h.api(`/v1/jobs/${id}/output?follow=true`)).arrayBuffer();
  return (await h.json<JobJson>(`/v1/jobs/${id}`)).body;
}

describe('webhooks', () => {
  let h: ApiHarness;
  let receiver: WebhookReceiver;
  let verify: Verify;
  let clock: ManualClock;

  before(async () => {
    clock = new ManualClock();
    h = await openApi(undefined, { clock, webhookRetry: { initialMs: 1000, maxMs: 1000 } });
    receiver = await WebhookReceiver.open();
    verify = await docsVerifier();
  });
  after(async () => {
    await h.destroy();
    await receiver.close();
  });

  it("delivers a job's own notify, signed with the server's secret (0600), verified by the docs' snippet", async () => {
    const secretFile = join(h.dataDir, 'webhook-secret');
    assert.equal((await stat(secretFile)).mode & 0o777, 0o600);
    const secret = (await readFile(secretFile, 'utf8')).trim();

    const start = receiver.received.length;
    const job = await startJob(h, {
      command: 'sh',
      args: ['-c', 'exit 3'],
      notify: { url: receiver.url('/own'), events: ['job:started', 'job:finished'] },
    });
    assert.deepEqual((job as unknown as { notify: unknown }).notify, {
      url: receiver.url('/own'),
      events: ['job:started', 'job:finished'],
    });
    const first = await receiver.nth(start + 1);
    const second = await receiver.nth(start + 2);
    const byEvent = new Map([first, second].map((r) => [r.headers['jobworker-event'], r]));
    const finished = byEvent.get('job:finished');
    const started = byEvent.get('job:started');
    assert.ok(finished && started, 'job:started and job:finished, and no job:queued');
    for (const r of [started, finished]) {
      assert.equal(r.path, '/own');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.match(String(r.headers['jobworker-signature']), /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.ok(verify(String(r.headers['jobworker-signature']), r.body, secret, clock.now().getTime()));
      assert.equal(verify(String(r.headers['jobworker-signature']), `${r.body} `, secret), false);
      assert.equal(verify(String(r.headers['jobworker-signature']), r.body, 'another secret'), false);
    }
    const body = JSON.parse(finished.body) as { id: string; event: string; at: string; job: JobJson };
    assert.equal(body.id, finished.headers['jobworker-delivery']);
    assert.equal(body.event, 'job:finished');
    assert.equal(body.job.id, job.id);
    assert.equal(body.job.status, 'failed');
    assert.equal(body.job.exitCode, 3);
    assert.equal((JSON.parse(started.body) as { job: JobJson }).job.status, 'running');
  });

  it('tries a receiver that fails twice a third time, with the same delivery id, on the clock', async () => {
    const start = receiver.received.length;
    receiver.answers = [500, 503];
    const job = await startJob(h, { command: 'true', notify: { url: receiver.url('/flaky') } });
    const first = await receiver.nth(start + 1);
    await h.server.diagnostics.webhooksSettled();
    const pending = await h.json<{ deliveries: Delivery[] }>(`/v1/webhooks/deliveries?jobId=${job.id}`);
    assert.equal(pending.status, 200);
    assert.equal(pending.body.deliveries.length, 1);
    const [d1] = pending.body.deliveries;
    assert.equal(d1!.status, 'pending');
    assert.equal(d1!.attempts, 1);
    assert.equal(d1!.lastStatus, 500);
    assert.equal(d1!.lastError, 'answered HTTP 500');
    assert.ok(d1!.nextAttemptAt !== null && Date.parse(d1!.nextAttemptAt) > clock.now().getTime() - 1);

    clock.advance(1000);
    const second = await receiver.nth(start + 2);
    await h.server.diagnostics.webhooksSettled();
    clock.advance(1000);
    const third = await receiver.nth(start + 3);
    await h.server.diagnostics.webhooksSettled();

    const ids = [first, second, third].map((r) => r.headers['jobworker-delivery']);
    assert.equal(new Set(ids).size, 1, 'one idempotency id on every attempt');
    assert.equal(second.body, first.body);
    const done = await h.json<{ deliveries: Delivery[] }>(`/v1/webhooks/deliveries?jobId=${job.id}`);
    assert.deepEqual(
      done.body.deliveries.map((d) => [d.status, d.attempts, d.lastStatus, d.lastError, d.nextAttemptAt]),
      [['delivered', 3, 200, null, null]],
    );
  });

  it('server-wide webhooks: admins add, list (without secrets) and remove them; they get every job', async () => {
    const added = await h.json<{ webhook: { id: string; url: string; events: string[] }; secret: string }>(
      '/v1/webhooks',
      {
        body: {
          url: receiver.url('/all'),
          events: ['job:queued', 'job:finished'],
          secret: 's3cret-s3cret-s3cret',
        },
      },
    );
    assert.equal(added.status, 201);
    assert.equal(added.body.secret, 's3cret-s3cret-s3cret');
    const generated = await h.json<{ webhook: { id: string }; secret: string }>('/v1/webhooks', {
      body: { url: receiver.url('/other') },
    });
    assert.match(generated.body.secret, /^whsec_[0-9a-f]{48}$/);
    const listed = await h.json<{ webhooks: Record<string, unknown>[] }>('/v1/webhooks');
    assert.deepEqual(
      listed.body.webhooks.map((w) => [w.url, w.events, 'secret' in w]),
      [
        [receiver.url('/all'), ['job:queued', 'job:finished'], false],
        [receiver.url('/other'), ['job:finished'], false],
      ],
    );
    assert.equal(
      (await h.api(`/v1/webhooks/${generated.body.webhook.id}`, { method: 'DELETE' })).status,
      200,
    );
    const gone = await h.json<{ error: { code: string } }>(`/v1/webhooks/${generated.body.webhook.id}`, {
      method: 'DELETE',
    });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'NOT_FOUND');

    const start = receiver.received.length;
    const job = await startJob(h, { command: 'true' });
    await receiver.nth(start + 2);
    await h.server.diagnostics.webhooksSettled();
    const got = receiver.received.slice(start);
    assert.deepEqual(got.map((r) => [r.path, r.headers['jobworker-event']]).sort(), [
      ['/all', 'job:finished'],
      ['/all', 'job:queued'],
    ]);
    for (const r of got) {
      assert.ok(
        verify(
          String(r.headers['jobworker-signature']),
          r.body,
          's3cret-s3cret-s3cret',
          clock.now().getTime(),
        ),
      );
      assert.equal((JSON.parse(r.body) as { job: JobJson }).job.id, job.id);
    }
    const byHook = await h.json<{ deliveries: Delivery[] }>(
      `/v1/webhooks/deliveries?webhookId=${added.body.webhook.id}&status=delivered`,
    );
    assert.equal(byHook.body.deliveries.filter((d) => d.jobId === job.id).length, 2);
    await h.api(`/v1/webhooks/${added.body.webhook.id}`, { method: 'DELETE' });
  });

  it("shows a server-wide webhook's deliveries (their URL, their errors) to admins alone", async () => {
    const added = await h.json<{ webhook: { id: string } }>('/v1/webhooks', {
      body: { url: receiver.url('/secret-hook/T0/B0/XXXX'), events: ['job:finished'] },
    });
    assert.equal(added.status, 201);
    try {
      const userHeaders = { authorization: `Bearer ${await addUserToken(h, 'vera')}` };
      const viewerHeaders = { authorization: `Bearer ${await addUserToken(h, 'vic', 'viewer')}` };
      const start = receiver.received.length;
      // Her job's own notify (to a name, refused at delivery: loopback) and the server-wide one.
      const created = await h.json<JobJson>('/v1/jobs', {
        headers: userHeaders,
        body: { command: 'true', notify: { url: receiver.url('/mine').replace('127.0.0.1', 'localhost') } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await receiver.nth(start + 1);
      await h.server.diagnostics.webhooksSettled();
      const query = `/v1/webhooks/deliveries?jobId=${created.body.id}`;
      const asAdmin = await h.json<{ deliveries: Delivery[] }>(query);
      assert.deepEqual(asAdmin.body.deliveries.map((d) => d.webhookId).sort(), [added.body.webhook.id, null]);
      for (const headers of [userHeaders, viewerHeaders]) {
        const seen = await h.json<{ deliveries: Delivery[] }>(query, { headers });
        assert.equal(seen.status, 200);
        assert.deepEqual(
          seen.body.deliveries.map((d) => [d.webhookId, d.url.includes('secret-hook')]),
          [[null, false]],
          "only the job's own notify delivery",
        );
        const byHook = await h.json<{ deliveries: Delivery[] }>(
          `/v1/webhooks/deliveries?webhookId=${added.body.webhook.id}`,
          { headers },
        );
        assert.deepEqual(byHook.body.deliveries, [], 'asked for by the webhook id: none either');
      }
    } finally {
      await h.api(`/v1/webhooks/${added.body.webhook.id}`, { method: 'DELETE' });
    }
  });

  it("refuses a user's webhook to loopback (SSRF) without a request reaching it; users see only their deliveries", async () => {
    const token = await addUserToken(h, 'wendy');
    const headers = { authorization: `Bearer ${token}` };
    const start = receiver.received.length;
    const created = await h.json<JobJson>('/v1/jobs', {
      headers,
      // A name, so that the check falls to delivery time, on the address it resolves to then.
      body: { command: 'true', notify: { url: receiver.url('/ssrf').replace('127.0.0.1', 'localhost') } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitForJob(h, created.body.id);
    await h.server.diagnostics.webhooksSettled();
    const mine = await h.json<{ deliveries: Delivery[] }>('/v1/webhooks/deliveries', { headers });
    assert.equal(mine.status, 200);
    assert.equal(mine.body.deliveries.length, 1, 'only her own');
    const [refused] = mine.body.deliveries;
    assert.equal(refused!.jobId, created.body.id);
    assert.equal(refused!.status, 'failed', 'not retried: the address will not become allowed');
    assert.equal(refused!.attempts, 1);
    assert.equal(refused!.lastStatus, null);
    assert.match(refused!.lastError ?? '', /(127\.0\.0\.1|::1) is a loopback, private or reserved address/);
    assert.equal(receiver.received.length, start, 'nothing reached the loopback receiver');

    // An address written in the URL is refused at once, creating nothing.
    const literal = await h.json<{ error: { code: string; field: string; message: string } }>('/v1/jobs', {
      headers,
      body: { command: 'true', notify: { url: 'http://169.254.169.254/latest/meta-data/' } },
    });
    assert.equal(literal.status, 400);
    assert.equal(literal.body.error.field, 'notify.url');
    assert.match(literal.body.error.message, /169\.254\.169\.254 is a loopback, private or reserved address/);
    const listed = await h.json<{ jobs: JobJson[] }>('/v1/jobs', { headers });
    assert.deepEqual(
      listed.body.jobs.map((j) => j.id),
      [created.body.id],
    );

    // Webhooks are an admin's: a user may neither list nor add them.
    assert.equal((await h.api('/v1/webhooks', { headers })).status, 403);
    assert.equal((await h.api('/v1/webhooks', { headers, body: { url: receiver.url() } })).status, 403);
  });

  it('takes notify over RPC too (StartRequest.notify), and shows it on the Job', async () => {
    const transport = createConnectTransport({
      baseUrl: h.server.url,
      httpVersion: '1.1',
      nodeOptions: { ca: await readFile(h.server.caFile!, 'utf8') },
      interceptors: [
        (next) => (req) => {
          req.header.set('authorization', `Bearer ${h.token}`);
          return next(req);
        },
      ],
    });
    const start = receiver.received.length;
    const { job } = await createClient(JobService, transport).start({
      command: 'true',
      notify: { url: receiver.url('/rpc'), events: [] },
    });
    assert.deepEqual([job?.notify?.url, job?.notify?.events], [receiver.url('/rpc'), ['job:finished']]);
    const got = await receiver.nth(start + 1);
    assert.equal(got.path, '/rpc');
    assert.equal((JSON.parse(got.body) as { job: JobJson }).job.id, job?.id);
    await h.server.diagnostics.webhooksSettled();
    const { deliveries } = await createClient(WebhookService, transport).listDeliveries({ jobId: job!.id });
    assert.deepEqual(
      deliveries.map((d) => [d.id, d.event, d.status, d.attempts, d.lastStatus, d.webhookId]),
      [[got.headers['jobworker-delivery'], 'job:finished', 'delivered', 1, 200, undefined]],
    );
  });

  it('refuses a bad notify at submission, naming the field, creating nothing', async () => {
    const before = (await h.json<{ jobs: unknown[] }>('/v1/jobs?limit=1000')).body.jobs.length;
    const cases: [unknown, string][] = [
      [{ url: 'ftp://example.com/x' }, 'notify.url'],
      [{ url: 'https://user:pw@example.com/x' }, 'notify.url'],
      [{ url: 'https://example.com/x', events: ['job:exploded'] }, 'notify.events'],
      [{ url: 'https://example.com/x', events: [] }, 'notify.events'],
    ];
    for (const [notify, field] of cases) {
      const res = await h.json<{ error: { code: string; field?: string; message: string } }>('/v1/jobs', {
        body: { command: 'true', notify },
      });
      assert.equal(res.status, 400, JSON.stringify(notify));
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.ok(
        (res.body.error.field ?? '').startsWith(field) || res.body.error.message.includes(field),
        `${JSON.stringify(notify)}: ${res.body.error.message}`,
      );
    }
    assert.equal((await h.json<{ jobs: unknown[] }>('/v1/jobs?limit=1000')).body.jobs.length, before);
  });
});

describe('webhooks with --webhook-allow', () => {
  it("lets a user's webhook reach an allowed private network", async () => {
    const h = await openApi(undefined, { webhookAllow: ['127.0.0.0/8'] });
    const receiver = await WebhookReceiver.open();
    try {
      const token = await addUserToken(h, 'walt');
      const created = await h.json<JobJson>('/v1/jobs', {
        headers: { authorization: `Bearer ${token}` },
        body: { command: 'true', notify: { url: receiver.url('/allowed') } },
      });
      assert.equal(created.status, 201);
      const got = await receiver.nth(1);
      assert.equal(got.path, '/allowed');
      assert.equal((JSON.parse(got.body) as { job: JobJson }).job.owner, 'walt');
    } finally {
      await h.destroy();
      await receiver.close();
    }
  });
});
