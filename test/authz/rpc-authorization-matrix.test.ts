import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DescService } from '@bufbuild/protobuf';
import { ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { AuditService } from '../../src/api/rpc/gen/jobworker/v1/audit_service_pb.ts';
import { CertificateService } from '../../src/api/rpc/gen/jobworker/v1/certificate_service_pb.ts';
import { ErrorDetailSchema } from '../../src/api/rpc/gen/jobworker/v1/errors_pb.ts';
import { JobService } from '../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { QueueService } from '../../src/api/rpc/gen/jobworker/v1/queue_service_pb.ts';
import { TokenService } from '../../src/api/rpc/gen/jobworker/v1/token_service_pb.ts';
import { Role, UserService } from '../../src/api/rpc/gen/jobworker/v1/user_service_pb.ts';
import { WebhookService } from '../../src/api/rpc/gen/jobworker/v1/webhook_service_pb.ts';
import type { AppHarness } from '../helpers/rest-app-harness.ts';
import {
  expectedOutcome,
  IDENTITIES,
  type Identity,
  OPERATIONS,
  type Operation,
} from './authorization-table.ts';
import { type Fixture, type MatrixWorld, openMatrixWorld } from './matrix-world.ts';

interface RpcCase {
  readonly operation: Operation;
  request(f: Fixture): Promise<object> | object;
  /** The code of the answer when allowed, if the allowed answer is an error (the job's state). */
  readonly ok?: string;
  cleanup?(a: AppHarness): Promise<void>;
  /** A stream that never ends by itself: allowed once its first message arrives. */
  readonly stream?: 'first message';
}

const SERVICES: readonly DescService[] = [
  JobService,
  QueueService,
  UserService,
  TokenService,
  AuditService,
  CertificateService,
  WebhookService,
];

/** Every RPC method, `Service.Method`, onto its operation. A method missing here fails the test. */
const RPC: Record<string, RpcCase> = {
  'JobService.Start': { operation: 'job:submit', request: () => ({ command: 'true' }) },
  'JobService.Get': { operation: 'job:get', request: (f) => ({ id: f.job }) },
  'JobService.List': { operation: 'job:list', request: () => ({}) },
  'JobService.Resolve': { operation: 'job:resolve', request: (f) => ({ ref: f.job }) },
  'JobService.Stop': { operation: 'job:stop', request: (f) => ({ id: f.job }), ok: 'ALREADY_FINISHED' },
  'JobService.Pause': { operation: 'job:pause', request: (f) => ({ id: f.job }), ok: 'ILLEGAL_TRANSITION' },
  'JobService.Resume': { operation: 'job:resume', request: (f) => ({ id: f.job }), ok: 'ILLEGAL_TRANSITION' },
  'JobService.Delete': { operation: 'job:delete', request: async (f) => ({ id: await f.freshJob() }) },
  'JobService.Prune': { operation: 'jobs:prune', request: () => ({ olderThanMs: 10n * 365n * 86_400_000n }) },
  'JobService.WaitFor': { operation: 'job:wait', request: (f) => ({ id: f.job }) },
  'JobService.StreamOutput': { operation: 'job:output', request: (f) => ({ id: f.job }) },
  'JobService.WatchEvents': { operation: 'job:events', request: () => ({}), stream: 'first message' },
  'QueueService.ListQueues': { operation: 'queue:list', request: () => ({}) },
  'QueueService.GetQueue': { operation: 'queue:get', request: () => ({ name: 'matrix' }) },
  'QueueService.UpdateQueue': {
    operation: 'queue:set',
    request: () => ({ name: 'matrix', concurrency: { value: 3 } }),
  },
  'QueueService.PauseQueue': { operation: 'queue:pause', request: () => ({ name: 'matrix' }) },
  'QueueService.ResumeQueue': { operation: 'queue:resume', request: () => ({ name: 'matrix' }) },
  'QueueService.GetDrainState': { operation: 'server:drain-state', request: () => ({}) },
  'QueueService.Drain': {
    operation: 'server:drain',
    request: () => ({}),
    cleanup: async (a) => {
      await a.service.undrain({ user: 'admin', role: 'admin' });
    },
  },
  'QueueService.Undrain': { operation: 'server:undrain', request: () => ({}) },
  'UserService.ListUsers': { operation: 'user:list', request: () => ({}) },
  'UserService.CreateUser': {
    operation: 'user:add',
    request: (f) => ({ name: f.newName(), role: Role.USER }),
  },
  'UserService.UpdateUser': {
    operation: 'user:set',
    request: async (f) => ({ name: await f.freshUser(), role: Role.VIEWER }),
  },
  'UserService.DeleteUser': {
    operation: 'user:remove',
    request: async (f) => ({ name: await f.freshUser() }),
  },
  'TokenService.ListTokens': { operation: 'token:list', request: () => ({}) },
  'TokenService.CreateToken': {
    operation: 'token:create',
    request: async (f) => ({ user: await f.freshUser() }),
  },
  'TokenService.RevokeToken': {
    operation: 'token:revoke',
    request: async (f) => ({ id: await f.freshToken() }),
  },
  'AuditService.ListAuditEntries': { operation: 'audit:list', request: () => ({}) },
  'CertificateService.ListCertificates': { operation: 'cert:list', request: () => ({}) },
  'CertificateService.IssueCertificate': {
    operation: 'cert:issue',
    request: () => ({ user: 'bob', days: 1 }),
  },
  'CertificateService.RevokeCertificate': {
    operation: 'cert:revoke',
    request: async (f) => ({ serial: await f.freshCertificate() }),
  },
  'WebhookService.AddWebhook': {
    operation: 'webhook:add',
    request: () => ({ url: 'https://hooks.example.com/rpc' }),
  },
  'WebhookService.ListWebhooks': { operation: 'webhook:list', request: () => ({}) },
  'WebhookService.RemoveWebhook': {
    operation: 'webhook:remove',
    request: async (f) => ({ id: await f.freshWebhook() }),
  },
  'WebhookService.ListDeliveries': { operation: 'webhook:deliveries', request: () => ({}) },
};

/** Calls a method by its descriptor, reading a server stream to its end. Resolves with the error code, or `ok`. */
async function outcomeOf(
  transport: Transport,
  service: DescService,
  method: string,
  request: object,
  firstMessageOnly = false,
) {
  const client = createClient(service, transport) as unknown as Record<string, (req: object) => unknown>;
  const desc = service.methods.find((m) => m.name === method)!;
  try {
    const answer = client[desc.localName]!(request);
    if (desc.methodKind === 'server_streaming') {
      for await (const _ of answer as AsyncIterable<unknown>) if (firstMessageOnly) break;
    } else await answer;
    return { code: 'ok', message: '' };
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    return {
      code: err.findDetails(ErrorDetailSchema)[0]?.code ?? `no detail (${err.code})`,
      message: err.rawMessage,
    };
  }
}

describe('the authorization matrix over RPC (Connect protocol over TLS)', () => {
  let w: MatrixWorld;
  // Read in the cases below; set once the world is open.
  let a: AppHarness;
  let tokens: MatrixWorld['tokens'];
  let aliceCertificate: MatrixWorld['aliceCertificate'];

  /** Connect over HTTP/1.1 and TLS; the mTLS user presents alice's client certificate and no token. */
  function transportAs(identity: Identity): Transport {
    const token = tokens[identity];
    return createConnectTransport({
      baseUrl: a.url!,
      httpVersion: '1.1',
      nodeOptions: { ca: a.caPem, ...(identity === 'mTLS user' ? aliceCertificate : {}) },
      interceptors: [
        (next) => (req) => {
          if (token !== undefined) req.header.set('authorization', `Bearer ${token}`);
          return next(req);
        },
      ],
    });
  }

  before(async () => {
    w = await openMatrixWorld();
    ({ a, tokens, aliceCertificate } = w);
  });
  after(() => w.close());

  it('has a row for every RPC method, and no row for a method there is not', () => {
    const methods = SERVICES.flatMap((s) => s.methods.map((m) => `${s.name}.${m.name}`));
    assert.deepEqual([...methods].sort(), Object.keys(RPC).sort());
  });

  for (const [name, rpc] of Object.entries(RPC)) {
    it(`${name} (${rpc.operation}: ${OPERATIONS[rpc.operation]})`, async () => {
      const [serviceName, method] = name.split('.') as [string, string];
      const service = SERVICES.find((s) => s.name === serviceName)!;
      for (const identity of IDENTITIES) {
        const fixture = w.fixtureFor(identity);
        const request = await rpc.request(fixture);
        const got = await outcomeOf(
          transportAs(identity),
          service,
          method,
          request,
          rpc.stream !== undefined,
        );
        const outcome = expectedOutcome(OPERATIONS[rpc.operation], identity);
        const expected = outcome === 'ok' ? (rpc.ok ?? 'ok') : outcome;
        assert.equal(got.code, expected, `${name} as ${identity}: ${got.message}`);
        if (outcome === 'NOT_FOUND') {
          // Exactly like an unknown id: the same answer with only the id changed.
          const unknown = '01900000-0000-7000-8000-000000000000';
          const probe = await outcomeOf(
            transportAs(identity),
            service,
            method,
            JSON.parse(
              JSON.stringify(request, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).replaceAll(
                fixture.job,
                unknown,
              ),
            ),
          );
          assert.deepEqual(probe, { code: got.code, message: got.message.replaceAll(fixture.job, unknown) });
        }
        if (outcome === 'ok') await rpc.cleanup?.(a);
      }
    });
  }
});
