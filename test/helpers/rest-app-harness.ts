import type { AddressInfo } from 'node:net';
import { type Client, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildRestApp, type RunRouteOptions } from '../../src/api/rest/rest-app.ts';
import { JobService as JobRpc } from '../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { UserService as UserRpc } from '../../src/api/rpc/gen/jobworker/v1/user_service_pb.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import type { FailedAuthLimits } from '../../src/auth/failed-auth-limiter.ts';
import type { Role } from '../../src/auth/principal.ts';
import { IssuedCertificates } from '../../src/auth/tls/issued-certificates.ts';
import { ServerTls } from '../../src/auth/tls/server-tls.ts';
import { openCertificateAuthority } from '../../src/auth/tls/tls-files.ts';
import { UserDirectory } from '../../src/auth/user-directory.ts';
import type { ClusterRouting } from '../../src/cluster/cluster-routing.ts';
import type { NodeCredentials } from '../../src/cluster/node-credentials.ts';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import type { JobIsolation } from '../../src/core/job.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ServerMetrics } from '../../src/metrics/server-metrics.ts';
import { AuditLog } from '../../src/service/audit-log.ts';
import { CertificateService } from '../../src/service/certificate-service.ts';
import { type JobEnginePort, JobService } from '../../src/service/job-service.ts';
import { NodeService } from '../../src/service/node-service.ts';
import { TaskService } from '../../src/service/task-service.ts';
import { UserService } from '../../src/service/user-service.ts';
import { WebhookService } from '../../src/service/webhook-service.ts';
import type { Harness } from './engine-harness.ts';

/** The REST app over an engine harness, wired as `runServer` wires it, for `inject()` tests. */
export interface AppHarness {
  readonly app: FastifyInstance;
  readonly accounts: UserDirectory;
  readonly service: JobService;
  readonly users: UserService;
  readonly certificates: CertificateService;
  /** The app's HTTPS address when opened with `tls: true`. */
  readonly url: string | undefined;
  /** The CA that issued the server's and the clients' certificates. */
  readonly caPem: string;
  readonly audit: AuditLog;
  /** Named tasks, from `tasksFile` when one was given. */
  readonly tasks: TaskService;
  /** Server-wide webhooks and deliveries (`/v1/webhooks`), on the harness's store. */
  readonly webhooks: WebhookService;
  /** Adds a user (unless it exists) and issues it a token; resolves with the token. */
  issue(user: string, role: Role, lifetimeMs?: number): Promise<string>;
  close(): Promise<void>;
}

export async function openApp(
  h: Harness,
  options: {
    logger?: FastifyBaseLogger;
    clock?: Clock;
    limits?: FailedAuthLimits;
    /**
     * Also listen on 127.0.0.1 with the server's TLS, as `runServer` does (client certificates
     * asked for and checked), for the calls only a real TLS connection can make (mTLS).
     */
    tls?: boolean;
    run?: RunRouteOptions;
    /** The service's `forceIsolation` policy (`serve --force-isolation`). */
    forceIsolation?: JobIsolation;
    /** A tasks file to load (docs/tasks.md), as `serve --tasks`. */
    tasksFile?: string;
    /** The built dashboard to serve at `/` (dist/web). */
    webRoot?: string;
    /** JobService options beyond the harness's own (event heartbeats, ...). */
    service?: { eventHeartbeatMs?: number; eventHistory?: number };
    /** Accept requests forwarded by other nodes, signed with this cluster secret (docs/cluster.md). */
    nodes?: NodeCredentials;
    /** The service's cluster routing: forward calls about other nodes' jobs (docs/cluster.md). */
    cluster?: ClusterRouting;
    /** What the service uses as its engine, instead of the harness's own (a view of a shared store). */
    engine?: JobEnginePort;
  } = {},
): Promise<AppHarness> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const clock = options.clock;
  // As runServer wires them: a user's credentials losing power ends its open streams.
  let endStreamsOf: (user: string, tokenId?: string) => void = () => undefined;
  const accounts = await UserDirectory.open(h.store.users, {
    ...(clock ? { clock } : {}),
    onRevoked: (user, tokenId) => endStreamsOf(user, tokenId),
  });
  const audit = new AuditLog(h.store.users);
  const service = new JobService(options.engine ?? h.engine, {
    ...(options.cluster ? { cluster: options.cluster } : {}),
    audit,
    ...(clock ? { clock } : {}),
    ...(options.forceIsolation ? { forceIsolation: options.forceIsolation } : {}),
    ...options.service,
    credentialsStale: (caller) => accounts.isStale(caller),
  });
  endStreamsOf = (user, tokenId) => service.endStreamsOf(user, tokenId);
  // As runServer wires it: the name of a user removed whose jobs are in the history takes `reuseName`.
  const users = new UserService(accounts, audit, {
    ...(clock ? { clock } : {}),
    usedBefore: async (name) => (await h.engine.list({ owner: name, limit: 1 })).jobs.length > 0,
  });
  const tasks = await TaskService.open(service, {
    ...(options.tasksFile ? { file: options.tasksFile } : {}),
    setQueue: (name, settings) => h.engine.setQueue(name, settings),
    audit,
    ...(clock ? { clock } : {}),
  });
  // A real CA in the harness's data directory, as `jobworker serve` makes it.
  const ca = await openCertificateAuthority(h.dataDir, new Date());
  const tls = options.tls
    ? await ServerTls.open({
        dataDir: h.dataDir,
        listenHost: '127.0.0.1',
        clock: clock ?? systemClock,
        logger: silentLogger,
      })
    : undefined;
  const issued = tls?.issued ?? (await IssuedCertificates.open(h.dataDir, ca, clock ?? systemClock));
  const certificates = new CertificateService({ issued, caPem: ca.certPem }, accounts, {
    audit,
    ...(clock ? { clock } : {}),
  });
  const webhooks = new WebhookService(h.store.webhooks, { audit, ...(clock ? { clock } : {}) });
  const metrics = new ServerMetrics({
    engine: h.engine,
    countJobsByStatus: () => h.store.webhooks.countJobsByStatus(),
    followers: () => service.followers,
  });
  const app = await buildRestApp({
    service,
    users,
    certificates,
    webhooks,
    metrics,
    authenticator: new Authenticator(accounts, {
      audit,
      ...(clock ? { clock } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
    }),
    logger,
    version: 'test',
    ...(tls ? { https: tls.serverOptions() } : {}),
    ...(options.run ? { run: options.run } : {}),
    tasks,
    ...(options.webRoot ? { webRoot: options.webRoot } : {}),
    ...(options.nodes ? { nodes: options.nodes } : {}),
    nodeList: NodeService.alone(h.engine, { url: () => 'http://127.0.0.1', clock: clock ?? systemClock }),
  });
  let url: string | undefined;
  if (tls) {
    tls.attach(app.server as unknown as Parameters<typeof tls.attach>[0]);
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  }
  return {
    app,
    accounts,
    service,
    users,
    certificates,
    audit,
    tasks,
    webhooks,
    issue: async (user, role, lifetimeMs) => {
      if (!accounts.user(user)) await accounts.addUser({ name: user, role });
      return (await accounts.issueToken({ user, lifetimeMs: lifetimeMs ?? null })).token;
    },
    url,
    caPem: ca.certPem,
    close: async () => {
      tls?.close();
      metrics.close();
      await app.close();
      await audit.close();
      await accounts.flush();
    },
  };
}

/** The RPC's JobService of an app listening with TLS (`tls: true`), over Connect on HTTP/1.1 as `token`. */
export function rpcJobs(a: AppHarness, token: string): Client<typeof JobRpc> {
  return createClient(JobRpc, rpcTransport(a, token));
}

/** The RPC's UserService of an app listening with TLS (`tls: true`), as `token`. */
export function rpcUsers(a: AppHarness, token: string): Client<typeof UserRpc> {
  return createClient(UserRpc, rpcTransport(a, token));
}

function rpcTransport(a: AppHarness, token: string) {
  return createConnectTransport({
    baseUrl: a.url!,
    httpVersion: '1.1',
    nodeOptions: { ca: a.caPem },
    interceptors: [
      (next) => (req) => {
        req.header.set('authorization', `Bearer ${token}`);
        return next(req);
      },
    ],
  });
}
