import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError, createClient, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { ErrorDetailSchema } from '../../src/api/rpc/gen/jobworker/v1/errors_pb.ts';
import { JobStatus } from '../../src/api/rpc/gen/jobworker/v1/job_pb.ts';
import { JobService } from '../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { QueueService } from '../../src/api/rpc/gen/jobworker/v1/queue_service_pb.ts';
import { Role, UserService } from '../../src/api/rpc/gen/jobworker/v1/user_service_pb.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { type ApiHarness, openApi } from '../api/api-harness.ts';

// Limits over RPC (Connect protocol): the same fields as REST, mapped in
// src/api/rpc/limits-mapping.ts onto the service's own input, so the same checks apply.

const MiB = 1024 * 1024;
const noCgroups = new Cgroups({ name: 'jobworker-limits-test' }).mode === 'none' ? 'no cgroups here' : false;

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

describe('limits over RPC', { skip: noCgroups }, () => {
  let h: ApiHarness;
  let transport: Transport;
  before(async () => {
    h = await openApi();
    const ca = await readFile(h.server.caFile!, 'utf8');
    transport = createConnectTransport({
      baseUrl: h.server.url,
      httpVersion: '1.1',
      nodeOptions: { ca },
      interceptors: [bearer(h.token)],
    });
  });
  after(() => h.destroy());

  it('starts a job with limits, old and new fields, and answers them with its usage', async () => {
    const jobs = createClient(JobService, transport);
    const { job } = await jobs.start({
      command: 'true',
      cwd: '/tmp',
      limits: { memoryBytes: BigInt(64 * MiB), cpu: 0.5, pids: 32, io: { writeBps: BigInt(MiB) } },
    });
    assert.equal(job?.limits?.memory, BigInt(64 * MiB));
    assert.equal(job?.limits?.cpu, 0.5);
    assert.equal(job?.limits?.pids, 32);
    assert.equal(job?.limits?.io?.writeBps, BigInt(MiB));
    let end: typeof job | undefined;
    for await (const message of jobs.streamOutput({ id: job!.id, follow: true })) {
      if (message.event.case === 'end') end = message.event.value;
    }
    assert.equal(end?.status, JobStatus.SUCCEEDED);
    assert.equal(end?.usage?.oomKills, 0);
    assert.equal(typeof end?.usage?.cpuSeconds, 'number');
  });

  it('refuses cpu with cpu_millis, and a limit over a queue maximum, naming the field', async () => {
    const jobs = createClient(JobService, transport);
    const both = await jobs
      .start({ command: 'true', limits: { cpu: 1, cpuMillis: 1000 } })
      .catch((e: unknown) => e);
    assert.ok(both instanceof ConnectError);
    assert.equal(both.code, Code.InvalidArgument);
    assert.equal(both.findDetails(ErrorDetailSchema)[0]?.field, 'limits.cpuMillis');
    const queues = createClient(QueueService, transport);
    const { queue } = await queues.updateQueue({
      name: 'rpc',
      defaultLimits: { memory: BigInt(128 * MiB) },
      maxLimits: { memory: BigInt(256 * MiB) },
    });
    assert.equal(queue?.defaultLimits?.memory, BigInt(128 * MiB));
    assert.equal(queue?.maxLimits?.memory, BigInt(256 * MiB));
    const over = await jobs
      .start({ command: 'true', queue: 'rpc', limits: { memoryBytes: BigInt(512 * MiB) } })
      .catch((e: unknown) => e);
    assert.ok(over instanceof ConnectError);
    assert.equal(over.findDetails(ErrorDetailSchema)[0]?.field, 'limits.memoryBytes');
    assert.match(over.rawMessage, /the maximum of queue `rpc`/);
  });

  it("sets a user's limits", async () => {
    const users = createClient(UserService, transport);
    await users.createUser({ name: 'dave', role: Role.USER });
    const { user } = await users.updateUser({ name: 'dave', maxLimits: { cpu: 2, pids: 100 } });
    assert.equal(user?.maxLimits?.cpu, 2);
    assert.equal(user?.maxLimits?.pids, 100);
    assert.equal(user?.defaultLimits?.memory, undefined);
  });
});
