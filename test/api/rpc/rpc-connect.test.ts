import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError, createClient, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { AuditService } from '../../../src/api/rpc/gen/jobworker/v1/audit_service_pb.ts';
import { ErrorDetailSchema } from '../../../src/api/rpc/gen/jobworker/v1/errors_pb.ts';
import { JobStatus } from '../../../src/api/rpc/gen/jobworker/v1/job_pb.ts';
import { JobService } from '../../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { QueueService } from '../../../src/api/rpc/gen/jobworker/v1/queue_service_pb.ts';
import { type ApiHarness, addUserToken, openApi } from '../api-harness.ts';

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

describe('Connect and gRPC-Web over HTTP/1.1 (@connectrpc/connect-node)', () => {
  let h: ApiHarness;
  let connectTransport: Transport;
  let grpcWebTransport: Transport;
  let ca: string;
  before(async () => {
    h = await openApi();
    ca = await readFile(h.server.caFile!, 'utf8');
    const token = await addUserToken(h, 'carol');
    const options = { baseUrl: h.server.url, httpVersion: '1.1' as const, nodeOptions: { ca } };
    connectTransport = createConnectTransport({ ...options, interceptors: [bearer(token)] });
    grpcWebTransport = createGrpcWebTransport({ ...options, interceptors: [bearer(token)] });
  });
  after(() => h.destroy());

  it('starts a job and follows its combined output to the final job, over the Connect protocol', async () => {
    const jobs = createClient(JobService, connectTransport);
    const { job } = await jobs.start({ command: 'sh', args: ['-c', 'echo out; echo err >&2'] });
    assert.equal(job?.owner, 'carol');
    const text: string[] = [];
    let end: JobStatus | undefined;
    for await (const message of jobs.streamOutput({ id: job!.id, follow: true })) {
      if (message.event.case === 'data') text.push(Buffer.from(message.event.value.data).toString());
      if (message.event.case === 'end') end = message.event.value.status;
    }
    assert.equal(text.join('').split('\n').sort().join('\n'), '\nerr\nout');
    assert.equal(end, JobStatus.SUCCEEDED);
  });

  it('lists jobs by queue and by text, and names `text` when it is empty', async () => {
    const jobs = createClient(JobService, connectTransport);
    const { job: tagged } = await jobs.start({ command: 'true', args: ['Rpc-Filter-Mark'], queue: 'rpc-q' });
    const { job: plain } = await jobs.start({ command: 'true', args: ['rpc-filter-mark'] });
    const byQueue = await jobs.list({ queue: 'rpc-q' });
    assert.deepEqual(
      byQueue.jobs.map((j) => j.id),
      [tagged!.id],
    );
    const byText = await jobs.list({ text: 'RPC-FILTER-MARK' });
    assert.deepEqual(
      byText.jobs.map((j) => j.id),
      [plain!.id, tagged!.id],
    );
    const bad = await jobs.list({ text: '' }).catch((e: unknown) => e);
    assert.ok(bad instanceof ConnectError);
    assert.equal(bad.code, Code.InvalidArgument);
    assert.equal(bad.findDetails(ErrorDetailSchema)[0]?.field, 'text');
  });

  it("lists the jobs of one owner, as REST does: an admin anyone's, a user only its own", async () => {
    const transport = (token: string) =>
      createConnectTransport({
        baseUrl: h.server.url,
        httpVersion: '1.1',
        nodeOptions: { ca },
        interceptors: [bearer(token)],
      });
    const carol = createClient(JobService, connectTransport);
    const dave = createClient(JobService, transport(await addUserToken(h, 'dave')));
    const admin = createClient(JobService, transport(h.token));
    const { job: carols } = await carol.start({ command: 'true', args: ['rpc-owner-mark'] });
    const { job: daves } = await dave.start({ command: 'true', args: ['rpc-owner-mark'] });
    const ids = async (client: typeof admin, owner: string) =>
      (await client.list({ owner, text: 'rpc-owner-mark' })).jobs.map((j) => j.id);
    assert.deepEqual(await ids(admin, 'dave'), [daves!.id]);
    assert.deepEqual(await ids(admin, 'carol'), [carols!.id]);
    assert.deepEqual(await ids(dave, 'dave'), [daves!.id]);
    assert.deepEqual(await ids(dave, 'carol'), []);
    assert.deepEqual(await ids(admin, 'nobody'), []);
  });

  it('answers errors as Connect errors with our code in the details', async () => {
    const jobs = createClient(JobService, connectTransport);
    const err = await jobs.get({ id: '01900000-0000-7000-8000-000000000000' }).catch((e: unknown) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.findDetails(ErrorDetailSchema)[0]?.code, 'NOT_FOUND');
    const bad = await jobs.get({ id: 'nope' }).catch((e: unknown) => e);
    assert.ok(bad instanceof ConnectError);
    assert.equal(bad.code, Code.InvalidArgument);
    assert.equal(bad.findDetails(ErrorDetailSchema)[0]?.field, 'id');
    const queues = createClient(QueueService, connectTransport);
    const forbidden = await queues.drain({}).catch((e: unknown) => e);
    assert.ok(forbidden instanceof ConnectError);
    assert.equal(forbidden.code, Code.PermissionDenied);
  });

  it('refuses a Timestamp out of its range in the binary protocol as INVALID_ARGUMENT naming it, not INTERNAL', async () => {
    // The binary decoding takes any seconds (JSON's refuses them): 1e15 s is past a Date's range.
    const binary = createConnectTransport({
      baseUrl: h.server.url,
      httpVersion: '1.1',
      nodeOptions: { ca },
      useBinaryFormat: true,
      interceptors: [bearer(h.token)],
    });
    const farOff = { seconds: 10n ** 15n, nanos: 0 };
    const logsBefore = h.logs.length;
    const refusal = async (call: Promise<unknown>, field: string) => {
      const err = await call.catch((e: unknown) => e);
      assert.ok(err instanceof ConnectError, String(err));
      assert.equal(err.code, Code.InvalidArgument, err.message);
      assert.equal(err.findDetails(ErrorDetailSchema)[0]?.code, 'VALIDATION_FAILED');
      assert.equal(err.findDetails(ErrorDetailSchema)[0]?.field, field);
    };
    const jobs = createClient(JobService, binary);
    await refusal(jobs.start({ command: 'true', runTime: farOff }), 'runTime');
    await refusal(jobs.start({ command: 'true', runTime: { seconds: 0n, nanos: -1 } }), 'runTime');
    const audit = createClient(AuditService, binary);
    await refusal(audit.listAuditEntries({ since: farOff }), 'since');
    await refusal(audit.listAuditEntries({ until: { seconds: -(10n ** 15n), nanos: 0 } }), 'until');
    // A client's mistake, not the server's: nothing logged as a failed RPC.
    assert.deepEqual(
      h.logs.slice(logsBefore).filter((line) => line.includes('rpc failed')),
      [],
    );
  });

  it('serves gRPC-Web too, and records each protocol as the transport in the audit trail', async () => {
    const jobs = createClient(JobService, grpcWebTransport);
    const { job } = await jobs.start({ command: 'true' });
    const waited = await jobs.waitFor({ id: job!.id });
    assert.equal(waited.job?.status, JobStatus.SUCCEEDED);
    const { body } = await h.json<{ entries: { transport: string; target: string }[] }>(
      '/v1/audit?action=job:submit&user=carol',
    );
    const transports = new Set(body.entries.map((e) => e.transport));
    assert.deepEqual([...transports].sort(), ['connect', 'grpc-web']);
  });
});
