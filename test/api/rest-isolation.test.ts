import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { ErrorDetailSchema } from '../../src/api/rpc/gen/jobworker/v1/errors_pb.ts';
import { JobService } from '../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { type ApiHarness, addUserToken, type JobJson, openApi } from './api-harness.ts';

type Job = JobJson & { isolation?: Record<string, unknown> };
interface ErrorJson {
  error: { code: string; message: string; field?: string };
}
const ISOLATE = { pid: true, network: 'none', mount: { privateTmp: true } };
const needsRoot = { skip: process.getuid?.() === 0 ? false : 'namespaces need root here' };

/** Submits a job and resolves with it once it has ended (its output followed to the end). */
async function run(h: ApiHarness, spec: object, token?: string): Promise<{ job: Job; output: string }> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const created = await h.json<Job>('/v1/jobs', { body: spec, headers });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const output = await h
    .api(`/v1/jobs/${created.body.id}/output?follow=true`, { headers })
    .then((r) => r.text());
  const { body } = await h.json<Job>(`/v1/jobs/${created.body.id}`, { headers });
  return { job: body, output };
}

describe('REST API: isolation', needsRoot, () => {
  let h: ApiHarness;
  let alice = '';
  before(async () => {
    h = await openApi();
    alice = await addUserToken(h, 'alice');
  });
  after(() => h.destroy());

  it('bad isolation values are 400 naming the field; nothing is created', async () => {
    const cases: [object, string, RegExp][] = [
      [{ network: 'bogus' }, 'isolation.network', /none|host/],
      [{ pid: 'yes' }, 'isolation.pid', /boolean/],
      [{ mount: { readOnly: ['relative/path'] } }, 'isolation.mount.readOnly[0]', /absolute path/],
      [{ mount: { hide: ['/'] } }, 'isolation.mount.hide[0]', /other than `\/`/],
      [{ hostname: 'not a host name' }, 'isolation.hostname', /host name/],
      [{ cgroup: true }, 'isolation.cgroup', /Unknown field|must NOT have additional/],
    ];
    for (const [isolation, field, message] of cases) {
      const res = await h.json<ErrorJson>('/v1/jobs', { body: { command: 'true', isolation } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.equal(res.body.error.field, field, JSON.stringify(res.body));
      assert.match(res.body.error.message, message);
    }
    const list = await h.json<{ jobs: Job[] }>('/v1/jobs');
    assert.equal(list.body.jobs.length, 0);
  });

  it("a job's isolation is shown on it, and it runs in it (a user's job: namespaces made before the drop)", async () => {
    const { job, output } = await run(
      h,
      {
        command: 'sh',
        // `exec`: ps takes the shell's place, so what it lists does not hang on whether the
        // shell had forked a second member of a pipeline yet (that race failed CI once).
        args: ['-c', 'hostname; exec ps ax -o pid='],
        // Its home is under the test's /tmp, which a private /tmp hides (docs/isolation.md).
        cwd: '/',
        isolation: { ...ISOLATE, hostname: 'api-job' },
      },
      alice,
    );
    assert.equal(job.status, 'succeeded', job.reason ?? '');
    assert.deepEqual(job.isolation, { ...ISOLATE, hostname: 'api-job' });
    const [hostname, ...pids] = output.trim().split(/\s+/);
    assert.equal(hostname, 'api-job', 'its own host name');
    assert.deepEqual(pids, ['1', '2'], 'only pid 1 (jobworker-init) and the command, pid 2');
    const plain = await run(h, { command: 'true' }, alice);
    assert.equal(plain.job.isolation, undefined, 'no isolation: none shown');
  });

  it("a queue's default applies to its jobs that name none, before the user's; the job's own wins", async () => {
    const put = await h.json<{ isolation: unknown }>('/v1/queues/sandbox', {
      method: 'PUT',
      body: { isolation: { pid: true } },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.isolation, { pid: true });
    const badQueue = await h.json<ErrorJson>('/v1/queues/sandbox', {
      method: 'PUT',
      body: { isolation: { mount: { readOnly: ['x'] } } },
    });
    assert.equal(badQueue.status, 400);
    assert.equal(badQueue.body.error.field, 'isolation.mount.readOnly[0]');

    const patched = await h.json<{ isolation: unknown }>('/v1/users/alice', {
      method: 'PATCH',
      body: { isolation: { network: 'none' } },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.isolation, { network: 'none' });

    const inQueue = await run(h, { command: 'true', queue: 'sandbox' }, alice);
    assert.deepEqual(inQueue.job.isolation, { pid: true }, "the queue's default");
    const elsewhere = await run(h, { command: 'true' }, alice);
    assert.deepEqual(elsewhere.job.isolation, { network: 'none' }, "the user's default");
    const own = await run(h, { command: 'true', queue: 'sandbox', isolation: { network: 'host' } }, alice);
    assert.equal(own.job.isolation, undefined, 'its own: the host network, nothing else');

    await h.json('/v1/users/alice', { method: 'PATCH', body: { isolation: null } });
    await h.json('/v1/queues/sandbox', { method: 'PUT', body: { isolation: null } });
    const cleared = await run(h, { command: 'true', queue: 'sandbox' }, alice);
    assert.equal(cleared.job.isolation, undefined);
  });
});

describe('REST API: serve --force-isolation', needsRoot, () => {
  let h: ApiHarness;
  let alice = '';
  before(async () => {
    h = await openApi(undefined, { forceIsolation: true });
    alice = await addUserToken(h, 'alice');
  });
  after(() => h.destroy());

  it("a non-admin's job gets at least --isolate, more when it asks for more", async () => {
    const plain = await run(h, { command: 'true' }, alice);
    assert.deepEqual(plain.job.isolation, ISOLATE);
    const more = await run(
      h,
      { command: 'true', isolation: { hostname: 'more', mount: { readOnly: ['/etc'] } } },
      alice,
    );
    assert.deepEqual(more.job.isolation, {
      pid: true,
      network: 'none',
      mount: { privateTmp: true, readOnly: ['/etc'] },
      hostname: 'more',
    });
  });

  it('a non-admin asking for less is 403 naming the field; an admin may', async () => {
    const asAlice = { authorization: `Bearer ${alice}` };
    for (const [isolation, field] of [
      [{ network: 'host' }, 'isolation.network'],
      [{ pid: false }, 'isolation.pid'],
      [{ mount: { privateTmp: false } }, 'isolation.mount.privateTmp'],
    ] as const) {
      const res = await h.json<ErrorJson>('/v1/jobs', {
        body: { command: 'true', isolation },
        headers: asAlice,
      });
      assert.equal(res.status, 403, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'FORBIDDEN');
      assert.equal(res.body.error.field, field);
      assert.match(res.body.error.message, /forces isolation on non-admin users/);
    }
    const admin = await run(h, { command: 'true', isolation: { network: 'host' } });
    assert.equal(admin.job.status, 'succeeded');
    assert.equal(admin.job.isolation, undefined);
  });
});

describe('REST API: serve --default-isolation', needsRoot, () => {
  it('applies to every job that names none, and a bad value stops the server from starting', async () => {
    const h = await openApi(undefined, { defaultIsolation: '{"network":"none"}' });
    try {
      const { job, output } = await run(h, {
        command: 'sh',
        args: ['-c', "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"],
      });
      assert.deepEqual(job.isolation, { network: 'none' });
      assert.equal(output, 'lo\n');
    } finally {
      await h.destroy();
    }
    await assert.rejects(openApi(undefined, { defaultIsolation: '{"network":"off"}' }), {
      code: 'VALIDATION_FAILED',
      field: 'defaultIsolation.network',
    });
  });
});

describe('RPC: isolation', needsRoot, () => {
  it('StartRequest.isolation runs the job isolated and Job.isolation shows it; a bad value names its field', async () => {
    const h = await openApi();
    try {
      const ca = await readFile(h.server.caFile!, 'utf8');
      const transport = createConnectTransport({
        baseUrl: h.server.url,
        httpVersion: '1.1',
        nodeOptions: { ca },
        interceptors: [
          (next) => (req) => {
            req.header.set('authorization', `Bearer ${h.token}`);
            return next(req);
          },
        ],
      });
      const jobs = createClient(JobService, transport);
      const { job } = await jobs.start({
        command: 'sh',
        args: ['-c', 'ps ax -o pid= | wc -l'],
        isolation: { pid: true, network: 'none', mount: { privateTmp: true, readOnly: ['/etc'] } },
      });
      assert.equal(job?.isolation?.pid, true);
      assert.equal(job?.isolation?.network, 'none');
      assert.deepEqual(job?.isolation?.mount?.readOnly, ['/etc']);
      const { job: done } = await jobs.waitFor({ id: job!.id });
      assert.equal(done?.exitCode, 0);
      const bad = await jobs
        .start({ command: 'true', isolation: { network: 'off' } })
        .catch((e: unknown) => e);
      assert.ok(bad instanceof ConnectError);
      assert.equal(bad.code, Code.InvalidArgument);
      assert.equal(bad.findDetails(ErrorDetailSchema)[0]?.field, 'isolation.network');
    } finally {
      await h.destroy();
    }
  });
});
