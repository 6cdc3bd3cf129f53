import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { DescField, DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { ConnectError, createClient, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import {
  AuditService,
  ListAuditEntriesRequestSchema,
} from '../../../src/api/rpc/gen/jobworker/v1/audit_service_pb.ts';
import { ErrorDetailSchema } from '../../../src/api/rpc/gen/jobworker/v1/errors_pb.ts';
import {
  JobService,
  ListRequestSchema,
  OnDuplicate,
  StartRequestSchema,
} from '../../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import {
  ListDeliveriesRequestSchema,
  WebhookService,
} from '../../../src/api/rpc/gen/jobworker/v1/webhook_service_pb.ts';
import { type ApiHarness, addUserToken, openApi } from '../api-harness.ts';

type Start = MessageInitShape<typeof StartRequestSchema>;

/**
 * Whether `path` (an ErrorDetail's field: `retry.backoffFactor`, `args[0]`, `env.FOO`) names a
 * field of `message` by its JSON name, through nested messages, list indexes and map keys (the
 * rest of the path, which may hold dots).
 */
function protoHas(message: DescMessage, path: string): boolean {
  let current: DescMessage | undefined = message;
  for (const segment of path.split('.')) {
    const match = /^(\w+)(\[\d+\])?$/.exec(segment);
    if (match === null || current === undefined) return false;
    const field: DescField | undefined = current.fields.find((f) => f.jsonName === match[1]);
    if (field === undefined) return false;
    if (match[2] !== undefined && field.fieldKind !== 'list') return false;
    // StartRequest's maps hold strings: whatever follows is the key.
    if (field.fieldKind === 'map') return true;
    current =
      field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message')
        ? field.message
        : undefined;
  }
  return true;
}

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

const MiB = 1024n * 1024n;

/** Start requests the service refuses, each with the field its refusal names in StartRequest. */
const REFUSED: readonly [Start, string][] = [
  [{ command: '' }, 'command'],
  [{ command: 'true', args: ['a\0'] }, 'args[0]'],
  [{ command: 'true', env: { '1BAD': 'x' } }, 'env.1BAD'],
  [{ command: 'true', env: { FOO: 'a\0' } }, 'env.FOO'],
  [{ command: 'true', cwd: 'relative' }, 'cwd'],
  [{ command: 'true', timeoutMs: 0n }, 'timeoutMs'],
  [{ command: 'true', timeoutMs: 1000n, noTimeout: true }, 'noTimeout'],
  [{ command: 'true', name: '' }, 'name'],
  [{ command: 'true', labels: { 'a.b c': 'x' } }, 'labels.a.b c'],
  [{ command: 'true', limits: { memoryBytes: 1n } }, 'limits.memoryBytes'],
  [{ command: 'true', limits: { memorySwapBytes: -1n } }, 'limits.memorySwapBytes'],
  [{ command: 'true', limits: { cpuMillis: 1 } }, 'limits.cpuMillis'],
  [{ command: 'true', limits: { cpu: 0.5, cpuMillis: 500 } }, 'limits.cpuMillis'],
  [{ command: 'true', limits: { cpu: -1 } }, 'limits.cpu'],
  [{ command: 'true', limits: { pids: 0 } }, 'limits.pids'],
  [{ command: 'true', limits: { io: {} } }, 'limits.io'],
  [{ command: 'true', limits: { io: { device: 'vda', readBps: MiB } } }, 'limits.io.device'],
  [{ command: 'true', limits: { io: { weight: 10, readBps: MiB } } }, 'limits.io.weight'],
  [{ command: 'true', queue: 'no spaces' }, 'queue'],
  [{ command: 'true', priority: 1_000_000 }, 'priority'],
  [{ command: 'true', after: ['nope'] }, 'after[0]'],
  [{ command: 'true', retry: { attempts: 0 } }, 'retry.attempts'],
  [{ command: 'true', retry: { attempts: 2, backoffInitialMs: -1n } }, 'retry.backoffInitialMs'],
  [{ command: 'true', retry: { attempts: 2, backoffFactor: 0.5 } }, 'retry.backoffFactor'],
  [
    { command: 'true', retry: { attempts: 2, backoffInitialMs: 1000n, backoffMaxMs: 1n } },
    'retry.backoffMaxMs',
  ],
  [{ command: 'true', dedupeKey: '' }, 'dedupeKey'],
  [{ command: 'true', dedupeScope: 'carol' }, 'dedupeScope'],
  // More than a year from now (a time past runs at once).
  [{ command: 'true', runTime: { seconds: 20_000_000_000n } }, 'runTime'],
  [{ command: 'true', runTime: { seconds: 1n }, delayMs: 1n }, 'delayMs'],
  [{ command: 'true', delayMs: -1n }, 'delayMs'],
  [{ command: 'true', onDuplicate: 7 as OnDuplicate }, 'onDuplicate'],
  [{ command: 'true', onDuplicate: OnDuplicate.REJECT }, 'onDuplicate'],
  [{ command: 'true', isolation: { network: 'bogus' } }, 'isolation.network'],
  [{ command: 'true', isolation: { mount: { readOnly: ['rel'] } } }, 'isolation.mount.readOnly[0]'],
  [{ command: 'true', notify: { url: 'ftp://x' } }, 'notify.url'],
  [{ command: 'true', notify: { url: 'https://example.com/hook', events: ['bogus'] } }, 'notify.events[0]'],
  // Over the server's maxima (checked after the spec, under the service's own names).
  [{ command: 'true', limits: { memoryBytes: 128n * MiB } }, 'limits.memoryBytes'],
  [{ command: 'true', limits: { memorySwapBytes: 128n * MiB } }, 'limits.memorySwapBytes'],
  [{ command: 'true', limits: { cpuMillis: 2000 } }, 'limits.cpu'],
  [{ command: 'true', limits: { pids: 1000 } }, 'limits.pids'],
];

describe("the fields an RPC's ErrorDetail names", () => {
  let h: ApiHarness;
  let ca: string;
  /** The binary Connect protocol, whose decoding is gRPC's. */
  const transportAs = (token: string): Transport =>
    createConnectTransport({
      baseUrl: h.server.url,
      httpVersion: '1.1',
      nodeOptions: { ca },
      useBinaryFormat: true,
      interceptors: [bearer(token)],
    });
  before(async () => {
    h = await openApi(undefined, { maxLimits: 'memory=64M,memorySwap=64M,cpu=1,pids=100' });
    ca = await readFile(h.server.caFile!, 'utf8');
  });
  after(() => h.destroy());

  it('are fields of StartRequest, by their JSON names, for every refusal of Start', async () => {
    const jobs = createClient(JobService, transportAs(h.token));
    const named: string[] = [];
    for (const [request] of REFUSED) {
      const err = await jobs.start(request).catch((e: unknown) => e);
      assert.ok(
        err instanceof ConnectError,
        `${JSON.stringify(request, (_, v) => (typeof v === 'bigint' ? `${v}` : v))} was not refused`,
      );
      named.push(err.findDetails(ErrorDetailSchema)[0]?.field ?? '');
    }
    // Every name first, so that a failure shows them all.
    assert.deepEqual(
      named.filter((field) => !protoHas(StartRequestSchema, field)),
      [],
      'fields StartRequest does not have',
    );
    assert.deepEqual(
      named,
      REFUSED.map(([, field]) => field),
    );
  });

  it("names a user's refused runAsRoot, a field StartRequest has", async () => {
    const asDora = transportAs(await addUserToken(h, 'dora'));
    const err = await createClient(JobService, asDora)
      .start({ command: 'true', runAsRoot: true })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ConnectError);
    const field = err.findDetails(ErrorDetailSchema)[0]?.field ?? '';
    assert.equal(field, 'runAsRoot');
    assert.ok(protoHas(StartRequestSchema, field));
  });

  it('the walk itself tells a proto field from one that is not', () => {
    for (const field of [
      'retry.backoffFactor',
      'limits.io.readBps',
      'args[2]',
      'env.A.B',
      'notify.events[0]',
    ]) {
      assert.ok(protoHas(StartRequestSchema, field), field);
    }
    for (const field of [
      'retry.backoff.factor',
      'limits.memory',
      'limits.memorySwap',
      'runAt',
      'command[0]',
      'cwd.x',
    ]) {
      assert.ok(!protoHas(StartRequestSchema, field), field);
    }
  });

  it("names a list's bad page token by the request's own name, and its message says pageToken", async () => {
    const transport = transportAs(h.token);
    const refusals = [
      [ListRequestSchema, () => createClient(JobService, transport).list({ pageToken: 'garbage' })],
      [
        ListAuditEntriesRequestSchema,
        () => createClient(AuditService, transport).listAuditEntries({ pageToken: 'garbage' }),
      ],
      [
        ListDeliveriesRequestSchema,
        () => createClient(WebhookService, transport).listDeliveries({ pageToken: 'garbage' }),
      ],
    ] as const;
    for (const [schema, call] of refusals) {
      const err = await (call as () => Promise<unknown>)().catch((e: unknown) => e);
      assert.ok(err instanceof ConnectError, `${schema.typeName} took a garbage page token`);
      const detail = err.findDetails(ErrorDetailSchema)[0];
      assert.equal(detail?.code, 'VALIDATION_FAILED', schema.typeName);
      assert.equal(detail?.field, 'pageToken', schema.typeName);
      assert.ok(protoHas(schema, 'pageToken'));
      assert.match(err.rawMessage, /`pageToken`/);
      assert.doesNotMatch(err.rawMessage, /`cursor`|`nextCursor`/);
    }
  });
});
