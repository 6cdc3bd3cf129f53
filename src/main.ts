import { EventEmitter, once } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import { type AddressInfo, isIP, type Server, SocketAddress } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import pino from 'pino';
import packageJson from '../package.json' with { type: 'json' };
import { JobAccounts, type ServerIdentity } from './accounts/job-accounts.ts';
import { UidPool } from './accounts/uid-pool.ts';
import { ConnectionTracker } from './api/rest/connection-tracker.ts';
import { defaultWebRoot } from './api/rest/dashboard-routes.ts';
import { jobToJson } from './api/rest/job-json.ts';
import { LOG_SERIALIZERS, REDACT_PATHS, typedByName } from './api/rest/log-serializers.ts';
import { buildRestApp, type RunRouteOptions } from './api/rest/rest-app.ts';
import { loadSendFile } from './api/rest/send-file.ts';
import {
  closeSocket,
  listenOnSocket,
  MAX_SOCKET_PATH_BYTES,
  removeStaleSockets,
  socketPathFor,
} from './api/rest/socket-listener.ts';
import { ensureAdminToken } from './auth/admin-token.ts';
import { Authenticator } from './auth/authenticator.ts';
import type { FailedAuthLimits } from './auth/failed-auth-limiter.ts';
import { importLegacyTokens, TOKENS_FILE } from './auth/legacy-token-file.ts';
import { MetricsToken } from './auth/metrics-token.ts';
import { ServerTls } from './auth/tls/server-tls.ts';
import { UserDirectory } from './auth/user-directory.ts';
import type { ClusterNode } from './cluster/cluster-node.ts';
import { loadClusterSecret, NodeCredentials } from './cluster/node-credentials.ts';
import {
  checkInsecureHttp,
  checkLogLevel,
  checkRunWithoutToken,
  type ListenAddress,
  parseAdvertiseUrl,
  parseDefaultIsolation,
  parseDefaultTimeout,
  parseKeepFor,
  parseKeepJobs,
  parseListen,
  parseLogFormat,
  parseMaxQueues,
  parseMaxRunning,
  parseMetricsListen,
  parseNodeId,
  parseNodeTimeout,
  parseOutputCap,
  parseStorePool,
  parseStoreUrl,
  readServerConfig,
} from './config.ts';
import { type Clock, systemClock } from './core/clock.ts';
import { JobworkerError, ValidationError } from './core/errors.ts';
import { ISOLATE_PRESET } from './core/isolation.ts';
import type { Job, JobIsolation } from './core/job.ts';
import { type LimitSettings, normalizeLimitSettings, parseLimitsList } from './core/limits.ts';
import { isLoopbackHost, namesThisMachine } from './core/loopback.ts';
import { JobEngine } from './engine/job-engine.ts';
import { LogDestination, type LogTarget } from './log-destination.ts';
import { checkForLostDatabase } from './lost-database.ts';
import { MemoryRelief, releaseThisProcess } from './memory/memory-relief.ts';
import { ServerMetrics } from './metrics/server-metrics.ts';
import { type DataDirLock, lockDataDir } from './runtime/data-dir-lock.ts';
import { describeLooser, restrictDataDir } from './runtime/data-dir-permissions.ts';
import { checkIsolation } from './runtime/host-capabilities.ts';
import { type PrettyLogOptions, prettyLogDestination } from './server-log-format.ts';
import { openServerStore, type StoreChoice } from './server-store.ts';
import { AuditLog } from './service/audit-log.ts';
import { CertificateService } from './service/certificate-service.ts';
import { JobService } from './service/job-service.ts';
import { NodeService } from './service/node-service.ts';
import { TaskService, type TasksLoaded } from './service/task-service.ts';
import { UserService } from './service/user-service.ts';
import { WebhookService } from './service/webhook-service.ts';
import type { PgJobStore } from './store/postgres/pg-job-store.ts';
import { WebhookAddressPolicy } from './webhooks/address-policy.ts';
import { LookupGate, lookupsFor } from './webhooks/lookup-gate.ts';
import { loadSigningSecret } from './webhooks/signing-secret.ts';
import type { WebhookRetryPolicy } from './webhooks/webhook-backoff.ts';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.ts';

/**
 * The composition root: the only module that knows which store, engine and adapters make up a
 * server. `jobworker serve` calls `runServer` and, on SIGTERM or SIGINT, `close()`.
 */

export interface ServerOptions {
  /**
   * `host:port`; default `JOBWORKER_LISTEN`, else 127.0.0.1:8080. Port 0 picks a free port. Any
   * address with TLS; loopback only with `insecureHttp`.
   */
  listen?: string;
  /** Own server certificate (PEM file); default `JOBWORKER_TLS_CERT`, else one the server's CA issues. */
  tlsCert?: string;
  /** The key of `tlsCert` (PEM file); default `JOBWORKER_TLS_KEY`. */
  tlsKey?: string;
  /** CA file client certificates must chain to; default `JOBWORKER_CLIENT_CA`, else the server's own CA. */
  clientCa?: string;
  /** Plain HTTP instead of HTTPS (loopback only); default `JOBWORKER_INSECURE_HTTP=1`. */
  insecureHttp?: boolean;
  /**
   * Time and timers of the whole server (certificate renewal, token expiry, the rate limit, the
   * engine's schedules, the audit trail's times); the system clock by default (tests move a manual one).
   */
  clock?: Clock;
  /** Default `JOBWORKER_DATA_DIR`, else `$XDG_DATA_HOME/jobworker` or `~/.local/share/jobworker`. */
  dataDir?: string;
  /** pino level; default `JOBWORKER_LOG_LEVEL`, else `info`. */
  logLevel?: string;
  /**
   * Where the log lines go; default stdout. Writing them never blocks the server: lines that
   * cannot be written (a full disk) are dropped and counted (see `LogDestination`).
   */
  logStream?: NodeJS.WritableStream;
  /**
   * `pretty` (a line a person reads) or `json` (pino's lines); default `JOBWORKER_LOG_FORMAT`,
   * else `pretty` when the log stream is a terminal and `json` when it is not.
   */
  logFormat?: string;
  /** Newest bytes kept per stream of each job (`512M`, `1G`); default `JOBWORKER_OUTPUT_CAP`, else 1G. */
  outputCap?: string;
  /** Most jobs run at once, all queues together; default `JOBWORKER_MAX_RUNNING`, else 10000. */
  maxRunning?: string;
  /**
   * Most queues before a submission naming a new one is refused (`none`: no limit); default
   * `JOBWORKER_MAX_QUEUES`, else 1000 (docs/queues.md, "How many queues").
   */
  maxQueues?: string;
  /** Timeout of a job that sets none (`60s`, `none`); default `JOBWORKER_DEFAULT_TIMEOUT`, else none. */
  defaultTimeout?: string;
  /** Limits of a job that sets none (`memory=1G,cpu=2,pids=512`); default `JOBWORKER_DEFAULT_LIMITS`. */
  defaultLimits?: string;
  /** Limits no job may exceed, in the same form; default `JOBWORKER_MAX_LIMITS`. */
  maxLimits?: string;
  /** Most finished jobs kept (`none`: any number); default `JOBWORKER_KEEP_JOBS`, else 100000. */
  keepJobs?: string;
  /** How long finished jobs are kept (`30d`, `none`); default `JOBWORKER_KEEP_FOR`, else 30d. */
  keepFor?: string;
  /**
   * Accept a lost database: when `jobworker.db` is missing but job directories remain, stop every
   * process of those jobs and move their directories aside, instead of refusing to start.
   */
  resetStore?: boolean;
  /**
   * Where pool accounts get their homes (`<homesDir>/<user>`, 0700, owned by the account); default
   * `JOBWORKER_HOMES_DIR`, else `/var/lib/jobworker/homes`. Must be outside the data directory.
   * Used only by a root server.
   */
  homesDir?: string;
  /**
   * Where each job's io directory is made (`<ioDir>/<id>`: its `JOBWORKER_RESULT` and
   * `JOBWORKER_PROGRESS`); default `JOBWORKER_IO_DIR`, else `jobworker-io-<hash of the data
   * directory>` in the temp directory. Made 0711 and owned by the server when missing; one that
   * exists must be the server's and writable by no one else. Outside the data directory (job
   * accounts cannot enter it), and the same at every start: jobs adopted at a restart keep the
   * paths they were given.
   */
  ioDir?: string;
  /**
   * A server that is not root cannot switch accounts: it refuses `user` jobs unless this accepts
   * that every job runs as the server's own account. Default `JOBWORKER_SINGLE_ACCOUNT`.
   */
  singleAccount?: boolean;
  /**
   * The OS account admin jobs run as when the admin has no run-as of its own (`root` for a trusted
   * single-admin host, or a service account); default `JOBWORKER_ADMIN_RUN_AS`, else a pool account.
   */
  adminRunAs?: string;
  /**
   * Failed authentications allowed per source address and window before it is answered 429
   * RATE_LIMITED (default 20 a minute; docs/security.md).
   */
  authLimits?: FailedAuthLimits;
  /**
   * Answer `POST /run` without credentials, from loopback only, as a principal of its own
   * (`_run-without-token`, no real user: the take-home starter's curl examples; docs/compat.md).
   * Every other route still needs credentials. Refused unless `listen` is a loopback address.
   */
  runWithoutToken?: boolean;
  /** Working directory of `POST /run` jobs that name none; default the server's own (`process.cwd()`). */
  runCwd?: string;
  /**
   * The isolation of a job whose spec, queue and user name none: `isolate`, `none` or the JSON of an
   * `isolation` object (docs/isolation.md); default none.
   */
  defaultIsolation?: string;
  /**
   * Every job of a non-admin user gets at least what `start --isolate` asks for (its own PIDs,
   * its own /tmp, no network); asking for less is refused. Default off.
   */
  forceIsolation?: boolean;
  /**
   * The tasks file: named task definitions and their queues' settings, JSON or YAML (docs/tasks.md);
   * default `JOBWORKER_TASKS`, else none. A bad file keeps the server from starting.
   */
  tasks?: string;
  /**
   * A loopback `host:port` that also serves `GET /metrics`, plain HTTP without credentials (for a
   * local Prometheus or agent); default `JOBWORKER_METRICS_LISTEN`, else none. Refused off loopback.
   */
  metricsListen?: string;
  /**
   * CIDRs that users' own webhooks may reach although they are private or loopback (docs/webhooks.md,
   * "SSRF"); default `JOBWORKER_WEBHOOK_ALLOW` (comma-separated), else none.
   */
  webhookAllow?: readonly string[];
  /** Retry schedule of webhook deliveries (default: from 10 s, doubling to 1 h, for 24 h). */
  webhookRetry?: Partial<WebhookRetryPolicy>;
  /**
   * The store: a `postgres://` URL for PostgreSQL, shared by the nodes of a cluster (docs/cluster.md);
   * default `JOBWORKER_STORE`, else SQLite in the data directory.
   */
  store?: string;
  /** Most PostgreSQL connections (default `JOBWORKER_STORE_POOL`, else 10). */
  storePool?: string;
  /** This node's id (default `JOBWORKER_NODE_ID`, else the host name): what `Job.node` names. */
  nodeId?: string;
  /**
   * The base URL other nodes reach this one at (default `JOBWORKER_ADVERTISE_URL`, else the URL
   * it listens at, which only suits nodes on one host).
   */
  advertiseUrl?: string;
  /** A node silent this long is declared lost (`30s`; default `JOBWORKER_NODE_TIMEOUT`). */
  nodeTimeout?: string;
  /** How often this node beats; default a third of the node timeout, at most 5 s. */
  heartbeatMs?: number;
  /**
   * The cluster secret (a file of at least 32 random bytes, hex, owner-only), shared by the nodes:
   * it signs forwarded calls (docs/cluster.md). Default `JOBWORKER_CLUSTER_SECRET_FILE`; without
   * one, this node neither forwards nor accepts forwarded calls.
   */
  clusterSecretFile?: string;
  /** A PEM file of the CA that peers' HTTPS certificates chain to (default: the system's CAs). */
  clusterCa?: string;
}

export interface RunningServer {
  /** Base URL, e.g. `https://127.0.0.1:43123` (`http://` with `insecureHttp`). */
  url: string;
  /** The CA file that verifies the server's certificate (`<dataDir>/tls/ca.pem`); null with plain HTTP or an own certificate. */
  caFile: string | null;
  /**
   * The Unix socket the server also listens on (mode 0600): `<dataDir>/server.sock`, speaking TLS,
   * or `<dataDir>/server-http.sock` with `insecureHttp`; null when the data directory's path is too
   * long for one. Local clients that use it know they reach the server that owns the data directory.
   */
  socketPath: string | null;
  dataDir: string;
  /** The file holding the admin token (mode 0600). */
  adminTokenFile: string;
  /** The file holding the dedicated metrics token (mode 0600): it reads `GET /metrics` only. */
  metricsTokenFile: string;
  /** `http://127.0.0.1:PORT/metrics` with `metricsListen`; else null. */
  metricsUrl: string | null;
  /**
   * Reads the tasks file again (what `SIGHUP` and `POST /v1/tasks/reload` do), as the server itself;
   * a bad file keeps the definitions in force and rejects with a `ValidationError` naming it.
   */
  reloadTasks(): Promise<TasksLoaded>;
  /**
   * What the server's memory relief does once quiet, now: the store's page cache, then (when Node
   * runs with `--expose-gc`, as `jobworker serve` does) a full collection and glibc's
   * `malloc_trim`. For a program that embeds the server and knows a quiet moment when it sees one.
   * Does nothing once `close()` was called.
   */
  releaseMemory(): Promise<void>;
  /**
   * Stops accepting connections, ends open output streams cleanly (raw streams get their trailers;
   * clients resume by cursor), waits for requests in flight, then closes the engine and the store.
   * Jobs keep running: the next server on the same data directory adopts them. Idempotent.
   */
  close(): Promise<void>;
  /**
   * Test-only accessor (leak checks), not part of the supported API: live counts of what the
   * server holds open.
   */
  readonly diagnostics: {
    /** Output streams open now; each holds one output-monitor listener while it follows. */
    followers(): number;
    /** Open HTTP connections. */
    connections(): number;
    /** Resolves once no output stream and no HTTP connection is open. */
    idle(): Promise<void>;
    /**
     * Resolves once webhook dispatch is at rest: no pass running, no attempt in flight, the timer
     * of the next retry (if any) armed. Tests move a manual clock only then.
     */
    webhooksSettled(): Promise<void>;
  };
}

/** After close() has ended the streams, requests still in flight get this long before their connections are cut. */
const CLOSE_GRACE_MS = 10_000;

export async function runServer(options: ServerOptions = {}): Promise<RunningServer> {
  const config = readServerConfig();
  const listen = parseListen(options.listen ?? config.listen);
  const insecureHttp = checkInsecureHttp(listen, options.insecureHttp ?? config.insecureHttp);
  const run = {
    cwd: resolve(options.runCwd ?? process.cwd()),
    ...(checkRunWithoutToken(listen, options.runWithoutToken === true) ? { withoutToken: true } : {}),
  };
  const tlsFiles = {
    certFile: options.tlsCert ?? config.tlsCert,
    keyFile: options.tlsKey ?? config.tlsKey,
    clientCaFile: options.clientCa ?? config.clientCa,
  };
  const clock = options.clock ?? systemClock;
  const metricsListenText = options.metricsListen ?? config.metricsListen;
  const metricsListen = metricsListenText === undefined ? undefined : parseMetricsListen(metricsListenText);
  const webhookPolicy = new WebhookAddressPolicy(options.webhookAllow ?? config.webhookAllow);
  const dataDir = resolve(options.dataDir ?? config.dataDir);
  const storeUrl = options.store ?? config.store;
  const storeChoice: StoreChoice =
    storeUrl === undefined
      ? { kind: 'sqlite' }
      : {
          kind: 'postgres',
          url: parseStoreUrl(storeUrl),
          poolMax: parseStorePool(options.storePool ?? config.storePool),
        };
  const nodeIdText = options.nodeId ?? config.nodeId;
  const nodeId = nodeIdText === undefined ? undefined : parseNodeId(nodeIdText);
  const advertiseText = options.advertiseUrl ?? config.advertiseUrl;
  if (storeChoice.kind === 'postgres' && advertiseText === undefined && isUnspecifiedAddress(listen.host)) {
    throw new ValidationError(
      'advertiseUrl',
      `Expected --advertise-url for a node listening on ${listen.host}: the other nodes of the cluster cannot reach "any address"; give the URL they reach this one at, such as https://node1.example:${listen.port}`,
    );
  }
  const cluster: ClusterSettings | undefined =
    storeChoice.kind === 'postgres'
      ? {
          nodeId: nodeId ?? parseNodeId(hostname().split('.')[0] ?? 'node'),
          ...(advertiseText === undefined ? {} : { advertiseUrl: parseAdvertiseUrl(advertiseText) }),
          timeoutMs: parseNodeTimeout(options.nodeTimeout ?? config.nodeTimeout),
          ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
          ...((options.clusterSecretFile ?? config.clusterSecretFile) === undefined
            ? {}
            : { secretFile: resolve((options.clusterSecretFile ?? config.clusterSecretFile)!) }),
          ...((options.clusterCa ?? config.clusterCa) === undefined
            ? {}
            : { caFile: resolve((options.clusterCa ?? config.clusterCa)!) }),
        }
      : undefined;
  const pretty = prettyLogOptions(options.logFormat ?? config.logFormat, options.logStream, config.noColor);
  const logger = createLogger(checkLogLevel(options.logLevel ?? config.logLevel), options.logStream, pretty);
  const outputCapBytes = parseOutputCap(options.outputCap ?? config.outputCap);
  const maxRunning = parseMaxRunning(options.maxRunning ?? config.maxRunning);
  const maxQueues = parseMaxQueues(options.maxQueues ?? config.maxQueues);
  const defaultTimeoutMs = parseDefaultTimeout(options.defaultTimeout ?? config.defaultTimeout);
  const limits = normalizeLimitSettings({
    defaultLimits: parseLimitsList('defaultLimits', options.defaultLimits ?? config.defaultLimits),
    maxLimits: parseLimitsList('maxLimits', options.maxLimits ?? config.maxLimits),
  });
  const serverLimits = { defaults: limits.defaults ?? {}, maxima: limits.maxima ?? {} };
  const isolation = {
    defaultIsolation: parseDefaultIsolation(options.defaultIsolation ?? 'none'),
    forceIsolation: options.forceIsolation === true ? ISOLATE_PRESET : null,
  };
  const retention = {
    keepJobs: parseKeepJobs(options.keepJobs ?? config.keepJobs),
    keepForMs: parseKeepFor(options.keepFor ?? config.keepFor),
  };
  const accounts = {
    homesDir: resolve(options.homesDir ?? config.homesDir),
    singleAccount: options.singleAccount ?? config.singleAccount,
    adminRunAs: options.adminRunAs ?? config.adminRunAs,
  };
  checkOutsideDataDir('homesDir', accounts.homesDir, dataDir);
  const ioDirOption = options.ioDir ?? config.ioDir;
  // Resolved, an empty path would be the working directory, which the server would then own.
  if (ioDirOption === '') throw ValidationError.expected('ioDir', 'a directory path', ioDirOption);
  const ioDir = ioDirOption === undefined ? undefined : resolve(ioDirOption);
  if (ioDir !== undefined) checkOutsideDataDir('ioDir', ioDir, dataDir);

  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const lock = await lockDataDir(dataDir);
    try {
      const looser = restrictDataDir(dataDir);
      if (looser.length > 0) {
        logger.warn(
          { dataDir, fixed: looser.length },
          `data directory was readable by others; made owner-only: ${describeLooser(looser)}`,
        );
      }
      // The SQLite file is the data directory's own; a shared PostgreSQL store is not in it.
      if (storeChoice.kind === 'sqlite')
        await checkForLostDatabase(dataDir, options.resetStore === true, logger);
      const tls = insecureHttp
        ? undefined
        : await ServerTls.open({
            dataDir,
            listenHost: listen.host,
            clock,
            logger: logger.child({ component: 'tls' }),
            ...tlsFiles,
          });
      return await startOnDataDir({
        clock,
        listen,
        tls,
        dataDir,
        logger,
        lock,
        ...(ioDir === undefined ? {} : { ioDir }),
        outputCapBytes,
        maxRunning,
        maxQueues,
        defaultTimeoutMs,
        serverLimits,
        isolation,
        retention,
        accounts,
        authLimits: options.authLimits ?? {},
        run,
        tasksFile: options.tasks ?? config.tasks,
        metricsListen,
        webhooks: {
          policy: webhookPolicy,
          retry: options.webhookRetry ?? {},
          lookups: new LookupGate(lookupsFor(config.threadPoolSize)),
        },
        storeChoice,
        cluster,
        ...(nodeId === undefined ? {} : { nodeId }),
      });
    } catch (err) {
      await lock.release();
      throw err;
    }
  } catch (err) {
    await flushLog(logger);
    throw err;
  }
}

/** Everything after the data directory is ours: store, users and tokens, engine, HTTP. */
async function startOnDataDir({
  listen,
  tls,
  dataDir,
  logger,
  lock,
  ioDir,
  outputCapBytes,
  maxRunning,
  maxQueues,
  defaultTimeoutMs,
  serverLimits,
  isolation,
  retention,
  accounts: accountOptions,
  authLimits,
  run,
  clock,
  tasksFile,
  metricsListen,
  webhooks: webhookOptions,
  storeChoice,
  cluster: clusterSettings,
  nodeId,
}: {
  storeChoice: StoreChoice;
  cluster: ClusterSettings | undefined;
  nodeId?: string;
  clock: Clock;
  tasksFile: string | undefined;
  metricsListen: ListenAddress | undefined;
  webhooks: { policy: WebhookAddressPolicy; retry: Partial<WebhookRetryPolicy>; lookups: LookupGate };
  run: RunRouteOptions;
  accounts: { homesDir: string; singleAccount: boolean; adminRunAs: string | undefined };
  listen: ListenAddress;
  tls: ServerTls | undefined;
  dataDir: string;
  logger: pino.Logger;
  lock: DataDirLock;
  /** `RunServerOptions.ioDir`, resolved; undefined for the engine's default. */
  ioDir?: string;
  outputCapBytes: number;
  maxRunning: number;
  maxQueues: number | null;
  defaultTimeoutMs: number | null;
  serverLimits: LimitSettings;
  isolation: { defaultIsolation: JobIsolation | null; forceIsolation: JobIsolation | null };
  retention: { keepJobs: number | null; keepForMs: number | null };
  authLimits: FailedAuthLimits;
}): Promise<RunningServer> {
  const { store, shared } = await openServerStore(
    storeChoice,
    dataDir,
    clock,
    (message) => logger.warn({ component: 'store' }, message),
    clusterSettings && { nodeId: clusterSettings.nodeId, nodeTimeoutMs: clusterSettings.timeoutMs },
  );
  // A node of a cluster: joined before its engine claims anything (docs/cluster.md).
  let clusterNode: ClusterNode | undefined;
  let decidedWhileLost: Job[] = [];
  if (shared && clusterSettings) {
    try {
      const joined = await joinCluster(shared, clusterSettings, {
        listen,
        tls: tls !== undefined,
        clock,
        logger,
      });
      clusterNode = joined.node;
      decidedWhileLost = joined.decidedWhileLost;
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  // Every failure from here on closes the store, and first the node's membership, whose beats
  // began at the join (else they would go on against a closed pool).
  const closeStore = async (): Promise<void> => {
    await clusterNode?.close().catch(() => undefined);
    await store.close();
  };
  const audit = new AuditLog(store.users, { clock, logger: logger.child({ component: 'audit' }) });
  let admin: Awaited<ReturnType<typeof ensureAdminToken>>;
  let accounts: UserDirectory;
  // The service comes later: until it exists nobody has a stream to end.
  let endStreamsOf: (user: string, tokenId?: string) => void = () => undefined;
  try {
    const imported = await importLegacyTokens(dataDir, store.users);
    if (imported > 0) logger.info({ tokens: imported }, `imported ${TOKENS_FILE} into the user store`);
    accounts = await UserDirectory.open(store.users, {
      clock,
      onError: (err) => logger.error({ err }, 'could not record when a token was last used'),
      onRevoked: (user, tokenId) => endStreamsOf(user, tokenId),
    });
    admin = await ensureAdminToken(dataDir, accounts, clusterNode ? { node: clusterNode.id } : {});
  } catch (err) {
    await closeStore();
    throw err;
  }
  let metricsToken: MetricsToken;
  let signing: { path: string; secret: string };
  try {
    metricsToken = await MetricsToken.open(dataDir);
    signing = await loadSigningSecret(dataDir);
  } catch (err) {
    await closeStore();
    throw err;
  }
  if (admin.created) logger.info({ adminTokenFile: admin.path }, 'admin token created');
  if (admin.disabled)
    logger.warn({ adminTokenFile: admin.path }, 'the user admin is disabled: admin.token does not work');

  let jobAccounts: JobAccounts;
  try {
    // On PostgreSQL, the pool's uids are the store's (one per user for every node), with what this
    // data directory's accounts.json gave before taken in.
    const pool = shared ? await sharedPool(shared, dataDir, accountOptions.homesDir, logger) : undefined;
    jobAccounts = await JobAccounts.open({
      dataDir,
      ...accountOptions,
      ...(pool ? { pool } : {}),
      onHomesWarning: (message) => logger.warn({ homesDir: accountOptions.homesDir }, message),
    });
  } catch (err) {
    await closeStore();
    throw err;
  }

  let engine: JobEngine;
  try {
    engine = await JobEngine.open({
      dataDir,
      store,
      ...(ioDir === undefined ? {} : { ioDir }),
      outputCapBytes,
      maxRunning,
      maxQueues,
      defaultTimeoutMs,
      limits: serverLimits,
      defaultIsolation: isolation.defaultIsolation,
      ...retention,
      clock,
      logger: logger.child({ component: 'engine' }),
      ...((clusterNode?.id ?? nodeId) === undefined ? {} : { node: clusterNode?.id ?? nodeId }),
      // At every launch, on one machine too: a job may wait long between its submit and its start
      // (delayed, waiting on a dependency or a paused queue, retried), and the account chosen at
      // its submit may no longer be one it may run as (root for an admin since demoted or
      // removed, a named account deleted and its uid given to another). A node of a cluster also
      // runs jobs other nodes admitted, their accounts resolved there.
      checkAccount: (job: Job) => checkLaunchAccount(job, accounts, jobAccounts),
    });
  } catch (err) {
    await closeStore();
    throw err;
  }
  try {
    // A policy this host cannot carry out would refuse every job: refuse to start instead.
    checkIsolation(isolation.defaultIsolation ?? undefined, engine.host);
    checkIsolation(isolation.forceIsolation ?? undefined, engine.host);
  } catch (err) {
    await engine.close();
    await closeStore();
    throw err;
  }
  if (decidedWhileLost.length > 0) {
    const ended = await engine.endLeftovers(decidedWhileLost);
    logger.warn(
      { jobs: decidedWhileLost.length, ended },
      'this node had been declared lost: its jobs were decided by other nodes; processes left of them were ended',
    );
  }
  // In the background: it reads every job directory of this node, and a launch of such a job
  // waits for its run to be ended.
  if (clusterNode) {
    engine
      .endUnrecordedRuns()
      .then((ended) => {
        if (ended.length > 0)
          logger.warn(
            { jobs: ended },
            'runs this node began and never recorded, whose claims other nodes gave back while it was lost, were ended',
          );
      })
      .catch((err: unknown) =>
        logger.error({ err }, 'looking for runs whose start was never recorded failed'),
      );
  }
  const service = new JobService(engine, {
    ...(clusterNode ? { cluster: clusterNode.routing } : {}),
    accounts: jobAccounts,
    audit,
    clock,
    userLimits: (name) => accounts.user(name)?.limits,
    forceIsolation: isolation.forceIsolation,
    webhookPolicy: webhookOptions.policy,
    credentialsStale: (caller) => accounts.isStale(caller),
  });
  endStreamsOf = (user, tokenId) => service.endStreamsOf(user, tokenId);
  const tasks = await TaskService.open(service, {
    ...(tasksFile ? { file: resolve(tasksFile) } : {}),
    setQueue: (name, settings) => engine.setQueue(name, settings),
    audit,
    clock,
  }).catch(async (err: unknown) => {
    await engine.close();
    await closeStore();
    throw err;
  });
  const dispatcher = new WebhookDispatcher({
    store: store.webhooks,
    clock,
    policy: webhookOptions.policy,
    signingSecret: signing.secret,
    isTrusted: (owner) => accounts.user(owner)?.role === 'admin',
    jobJson: jobToJson,
    userAgent: `jobworker/${packageJson.version}`,
    logger: logger.child({ component: 'webhooks' }),
    retry: webhookOptions.retry,
    lookups: webhookOptions.lookups,
    // A cluster's node claims deliveries by its name (the jobs' `node`), kept across restarts.
    ...((clusterNode?.id ?? nodeId) === undefined ? {} : { claimer: clusterNode?.id ?? nodeId }),
    stillRunning: async (id) => {
      const status = (await engine.getRecorded(id).catch(() => undefined))?.status;
      return status === 'running' || status === 'paused';
    },
  });
  // The store wrote each change's outbox row with the change; these only say "look now".
  for (const event of ['job:queued', 'job:started', 'job:finished'] as const) {
    engine.on(event, (job: Job) => dispatcher.notice(job));
  }
  // Its `job:finished` tells its last progress: what was held back of it is not sent after.
  engine.on('job:finished', (job: Job) => dispatcher.jobEnded(job.id));
  // Progress is no state change: `record` writes it, not the triggers.
  engine.on('job:progress', (job: Job) => {
    dispatcher.record('job:progress', job).catch((err: unknown) => {
      logger.error({ err, jobId: job.id }, 'could not record a job:progress webhook event');
    });
  });
  const webhooks = new WebhookService(store.webhooks, { audit, clock, onChange: () => dispatcher.kick() });
  const metrics = new ServerMetrics({
    engine,
    countJobsByStatus: () => store.webhooks.countJobsByStatus(),
    followers: () => service.followers,
    onDeliveryAttempt: (listener) => dispatcher.on('delivery:attempt', listener),
  });
  const certificates = new CertificateService(
    tls?.issued ? { issued: tls.issued, caPem: tls.certificateAuthority.certPem } : null,
    accounts,
    { audit, clock },
  );
  let listening = '';
  const nodeList =
    shared && clusterNode
      ? NodeService.cluster(shared.nodes, clusterNode.id)
      : NodeService.alone(engine, { url: () => listening, clock });
  // Catch-up reads of finished output through sendfile(2); without the addon, through pooled pages.
  const sendFile = loadSendFile();
  if ('reason' in sendFile)
    logger.info(`catch-up reads copy through the server's memory: ${sendFile.reason}`);
  const app = await buildRestApp({
    nodeList,
    service,
    users: new UserService(accounts, audit, {
      clock,
      checkRunAs: (name, role) => jobAccounts.checkRunAs(name, role),
      onUserRemoved: async (name, who) => {
        await certificates.revokeAllOf(who, name);
      },
      usedBefore: async (name) =>
        (await jobAccounts.hasPoolAccount(name)) ||
        (await engine.list({ owner: name, limit: 1 })).jobs.length > 0,
    }),
    authenticator: new Authenticator(accounts, {
      audit,
      clock,
      logger: logger.child({ component: 'auth' }),
      limits: authLimits,
      // `issued` is the own CA's record: there is none with `--client-ca`.
      ownClientCa: tls?.issued != null,
    }),
    logger,
    version: packageJson.version,
    run,
    ...('addon' in sendFile ? { sendFile: sendFile.addon } : {}),
    webRoot: defaultWebRoot(),
    ...(tls ? { https: tls.serverOptions() } : {}),
    certificates,
    tasks,
    webhooks,
    metrics,
    metricsToken,
    ...(clusterNode?.credentials ? { nodes: clusterNode.credentials } : {}),
  }).catch(async (err: unknown) => {
    metrics.close();
    await dispatcher.close();
    await engine.close();
    await closeStore();
    throw err;
  });

  const changes = new EventEmitter();
  const tracker = new ConnectionTracker(app.server, tls !== undefined, () => changes.emit('change'));
  service.on('follower:close', () => changes.emit('change'));
  // RSS back down after a burst of follows or jobs (see MemoryRelief; needs `--expose-gc`), never
  // while an output stream is open: its pause would reach the client.
  const followed = () => service.followers > 0;
  const releaseNow = releaseThisProcess({
    log: (message) => logger.info(message),
    caches: () => store.releaseMemory(),
    busy: followed,
  });
  const relief = releaseNow && new MemoryRelief(clock, () => void releaseNow(), { busy: followed });
  if (relief) {
    service.on('follower:close', () => relief.activity());
    engine.on('job:finished', () => relief.activity());
    relief.activity(); // starting up is a burst too
  }
  if (tls) tls.attach(app.server as unknown as Http2SecureServer);

  const socketPath = socketPathFor(dataDir, tls !== undefined);
  const socketFits = Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH_BYTES;
  let socket: Server | undefined;
  let metricsServer: HttpServer | undefined;
  /** Undoes a start that failed once the app existed: every listener, then engine and store. */
  const abandon = async (): Promise<void> => {
    metricsServer?.close();
    if (socket) await closeSocket(socket, socketPath);
    await dispatcher.close();
    relief?.close();
    metrics.close();
    tls?.close();
    await app.close();
    await engine.close();
    await closeStore();
  };
  try {
    await app.listen({ host: listen.host, port: listen.port });
    await removeStaleSockets(dataDir);
    if (socketFits) socket = await listenOnSocket(app.server, socketPath);
    if (metricsListen) metricsServer = await listenForMetrics(metrics, metricsListen);
  } catch (err) {
    await abandon();
    throw err;
  }
  if (!socketFits) {
    logger.warn(
      { socketPath },
      'the data directory path is too long for a Unix socket: local clients must set JOBWORKER_TOKEN',
    );
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${tls ? 'https' : 'http'}://${host}:${address.port}`;
  listening = url;
  const metricsUrl = metricsServer ? `${httpUrlOf(metricsServer)}/metrics` : null;
  // What a killed server left undelivered goes out now.
  dispatcher.kick();
  if (clusterNode) {
    try {
      await clusterNode.advertise(clusterSettings?.advertiseUrl ?? url);
      await clusterNode.start({ engine, reloadAccounts: () => accounts.reload() });
    } catch (err) {
      await abandon();
      throw err;
    }
  }
  logger.info(
    {
      url,
      socket: socket ? socketPath : null,
      tls: tls ? 'TLSv1.3' : 'off (--insecure-http)',
      dataDir,
      adminTokenFile: admin.path,
      metrics: metricsUrl,
      cgroups: engine.cgroupMode,
      jobAccounts: describeAccounts(jobAccounts.server),
    },
    'jobworker listening',
  );

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    // First: jobs that end while it closes must not arm a relief that would find the store closed.
    relief?.close();
    const force = clock.setTimer(() => tracker.closeAll(), CLOSE_GRACE_MS);
    try {
      tls?.close();
      if (socket) await closeSocket(socket, socketPath);
      if (metricsServer) await closeHttp(metricsServer);
      await service.shutdown();
      // Idle connections end now, busy ones once their requests are answered.
      tracker.closeIdle();
      // The streams the shutdown ended are still writing their last bytes (a raw stream's
      // trailers, the end of an SSE stream): closing the server first destroyed their
      // connections, and their clients saw a cut stream instead of an ended one (test
      // rest-restart, under load). Bounded by the grace timer above, which cuts what is left.
      await tracker.requestsAnswered();
      await app.close();
    } finally {
      force.clear();
      metrics.close();
      await dispatcher.close();
      // A node that runs nothing (a drained one, say) leaves the cluster; one with jobs stays a
      // member, to adopt them at its next start (or be declared lost if it does not come back in time).
      const leaving = engine.drainState.running === 0;
      const left = await clusterNode
        ?.close(leaving ? { leave: 'shut down with no job running' } : {})
        .catch((err: unknown) => {
          logger.error({ err }, 'could not record leaving the cluster');
          return false;
        });
      if (clusterNode && leaving && left === false) {
        logger.warn(
          { node: clusterNode.id },
          'this node stays a member of the cluster: the store still records jobs of it (running, paused or being started); unless it starts again within the node timeout, another node declares it lost and decides them',
        );
      }
      await engine.close();
      // Bounded: a store that never comes back costs the close a few seconds, then the loss is logged.
      await audit.close();
      await accounts.flush();
      await store.close();
      await lock.release();
      logger.info({ url }, 'jobworker closed; running jobs keep running');
      await flushLog(logger);
    }
  };
  const idle = async (): Promise<void> => {
    while (service.followers > 0 || tracker.count > 0) await once(changes, 'change');
  };

  return {
    url,
    caFile: tls?.caFile ?? null,
    socketPath: socket ? socketPath : null,
    dataDir,
    adminTokenFile: admin.path,
    reloadTasks: async () => {
      try {
        const loaded = await tasks.reload({ user: 'system', role: 'admin', transport: 'internal' });
        logger.info({ file: loaded.file, tasks: loaded.tasks.length }, 'task definitions reloaded');
        return loaded;
      } catch (err) {
        logger.error({ err }, 'task definitions not reloaded; the ones in force are kept');
        throw err;
      }
    },
    releaseMemory: async () => {
      if (closed !== undefined) return; // closing: its store may be closed already
      await (releaseNow ? releaseNow() : store.releaseMemory());
    },
    metricsTokenFile: metricsToken.path,
    metricsUrl,
    close: () => {
      closed ??= close();
      return closed;
    },
    diagnostics: {
      followers: () => service.followers,
      connections: () => tracker.count,
      idle,
      webhooksSettled: () => dispatcher.settled(),
    },
  };
}

/**
 * `--metrics-listen`: a second, loopback-only listener that answers `GET /metrics` (and nothing
 * else) without credentials, so a local agent needs no token.
 */
async function listenForMetrics(metrics: ServerMetrics, address: ListenAddress): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    // No credentials here: a page of another site rebound to 127.0.0.1 would be same-origin to
    // it in a browser on this machine, and could read the queue names and counts.
    if (!namesThisMachine(req.headers.host)) {
      res
        .writeHead(421, { 'content-type': 'text/plain' })
        .end(
          'The metrics listener answers requests that name this machine in their Host (a loopback name or address, or its host name)\n',
        );
      return;
    }
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Only GET /metrics is served here\n');
      return;
    }
    metrics.scrape().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  server.listen(address.port, address.host);
  await once(server, 'listening');
  return server;
}

function httpUrlOf(server: HttpServer): string {
  const a = server.address() as AddressInfo;
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** `0.0.0.0`, `::` and their other spellings: "every address", which no peer can connect to. */
function isUnspecifiedAddress(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare.split('.').every((part) => Number(part) === 0);
  if (isIP(bare) === 6) return new SocketAddress({ address: bare, family: 'ipv6' }).address === '::';
  return false;
}

/**
 * The pool of a server on PostgreSQL: the store's (`PgPoolAccounts`), one uid per user for every
 * node, with this data directory's own allocations (accounts.json, from before) taken in. One the
 * store cannot keep as it was (another node gave the same user another uid, or this uid to another
 * user) is logged: the user's home here holds files of a uid that is no longer its account's.
 */
async function sharedPool(store: PgJobStore, dataDir: string, homesDir: string, logger: pino.Logger) {
  const conflicts = await store.poolAccounts.adopt((await UidPool.open(dataDir)).list());
  for (const c of conflicts) {
    logger.warn(
      { user: c.user, uid: c.localUid, poolUid: c.poolUid, uidHolder: c.uidHolder, homesDir },
      `the pool account of user ${c.user} had uid ${c.localUid} on this node, which the cluster's pool ` +
        (c.uidHolder ? `gives user ${c.uidHolder}` : 'does not keep') +
        (c.poolUid === undefined ? '' : `; its uid is ${c.poolUid} on every node`) +
        `: files of uid ${c.localUid} here (its home under ${homesDir}) are not its account's; give them to its new uid (chown -R) before its jobs run here`,
    );
  }
  return store.poolAccounts;
}

/** A node's cluster settings, checked (`serve --node-id`, `--advertise-url`, ...). */
interface ClusterSettings {
  readonly nodeId: string;
  readonly advertiseUrl?: string;
  readonly timeoutMs: number;
  readonly heartbeatMs?: number;
  readonly secretFile?: string;
  readonly caFile?: string;
}

/**
 * Joins the cluster of a shared store: the node's credentials (the cluster secret), its routing to
 * peers, and its membership. Returns the jobs decided while it was lost, to end what is left of them.
 */
async function joinCluster(
  store: PgJobStore,
  settings: ClusterSettings,
  context: { listen: ListenAddress; tls: boolean; clock: Clock; logger: pino.Logger },
): Promise<{ node: ClusterNode; decidedWhileLost: Job[] }> {
  const { clock, logger } = context;
  // Loaded only by a node of a cluster, like the PostgreSQL store it needs (server-store.ts).
  const { ClusterNode } = await import('./cluster/cluster-node.ts');
  const log = logger.child({ component: 'cluster', node: settings.nodeId });
  let credentials: NodeCredentials | undefined;
  if (settings.secretFile !== undefined) {
    credentials = new NodeCredentials({
      node: settings.nodeId,
      secret: await loadClusterSecret(settings.secretFile),
      clock,
    });
  } else {
    log.warn(
      {},
      'no --cluster-secret-file: this node neither forwards calls about jobs on other nodes nor accepts them (docs/cluster.md)',
    );
  }
  const peerCa = settings.caFile === undefined ? undefined : [await readFile(settings.caFile, 'utf8')];
  if (settings.advertiseUrl === undefined && isLoopbackHost(context.listen.host)) {
    log.warn(
      { listen: context.listen.host },
      'no --advertise-url: this node advertises its loopback address, which only nodes on this host can reach',
    );
  }
  const scheme = context.tls ? 'https' : 'http';
  const host = context.listen.host.includes(':') ? `[${context.listen.host}]` : context.listen.host;
  const node = new ClusterNode({
    store,
    // Until it listens (port 0 picks one), the address it was told to listen at.
    self: { id: settings.nodeId, url: settings.advertiseUrl ?? `${scheme}://${host}:${context.listen.port}` },
    ...(credentials ? { credentials } : {}),
    ...(peerCa ? { peerCa } : {}),
    clock,
    timeoutMs: settings.timeoutMs,
    ...(settings.heartbeatMs === undefined ? {} : { heartbeatMs: settings.heartbeatMs }),
    log,
  });
  const decidedWhileLost = await node.join();
  log.info(
    { previous: node.previous?.state ?? 'new', timeoutMs: settings.timeoutMs },
    `joined the cluster as ${settings.nodeId}`,
  );
  return { node, decidedWhileLost };
}

/**
 * What job accounts must reach (their homes, their io directories) is never inside the owner-only
 * data directory.
 */
function checkOutsideDataDir(field: 'homesDir' | 'ioDir', dir: string, dataDir: string): void {
  const rel = relative(dataDir, dir);
  // `..io` is a name inside it, not a way out of it.
  if (!(rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))) {
    throw new ValidationError(
      field,
      `Expected \`${field}\` outside the data directory ${dataDir} (job accounts cannot enter it), got ${dir}`,
    );
  }
}

/** How the server picks jobs' accounts, for the start line of its log. */
function describeAccounts(server: ServerIdentity): string {
  if (server.root) return 'per user (pool or configured run-as)';
  return server.singleAccount
    ? `single account: every job runs as ${server.account}`
    : `admin jobs only, as ${server.account} (not root; user jobs refused)`;
}

/**
 * Readable lines (`pretty`) when asked, or by default when the log goes to a terminal; colour only
 * on a terminal and without NO_COLOR. Undefined for JSON lines.
 */
function prettyLogOptions(
  format: string | undefined,
  stream: NodeJS.WritableStream | undefined,
  noColor: boolean,
): PrettyLogOptions | undefined {
  const terminal = (stream ?? process.stdout) as { isTTY?: boolean };
  const pretty = format === undefined ? terminal.isTTY === true : parseLogFormat(format) === 'pretty';
  return pretty ? { color: terminal.isTTY === true && !noColor } : undefined;
}

function createLogger(
  level: string,
  stream: NodeJS.WritableStream | undefined,
  pretty?: PrettyLogOptions,
): pino.Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { ...LOG_SERIALIZERS, err: typedByName(pino.stdSerializers.err) },
  };
  let logger: pino.Logger | undefined;
  const destination = new LogDestination(logTarget(stream), {
    onRecovered: ({ lines, cause }) =>
      logger?.warn(
        { droppedLogLines: lines, cause },
        `${lines} log lines could not be written and were dropped`,
      ),
  });
  // Formatted line by line in this thread (no pino-pretty worker beside the server), then written
  // through the same destination that never blocks.
  logger = pino(options, pretty ? prettyLogDestination(destination, pretty) : destination);
  return logger;
}

/**
 * The standard streams are written through their descriptors: Node writes to a file behind
 * stdout synchronously, and its write error would end the process.
 */
function logTarget(stream: NodeJS.WritableStream | undefined): LogTarget {
  if (stream === undefined) return 1;
  const fd = (stream as { fd?: unknown }).fd;
  if (stream === process.stdout || stream === process.stderr) return typeof fd === 'number' ? fd : 1;
  return stream;
}

/** Resolves once every line logged so far is written or dropped (never waits on a full disk). */
function flushLog(logger: pino.Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

/**
 * What a job's account must still be at its launch: root only for a job whose owner is an admin
 * now (the choice at submit was an admin's), and an account this host still gives the ids the job
 * recorded (`JobAccounts.checkOnThisHost`). Throws `ACCOUNT_UNAVAILABLE`, saying why: the job fails
 * to start with that reason.
 */
async function checkLaunchAccount(job: Job, users: UserDirectory, jobAccounts: JobAccounts): Promise<void> {
  const account = job.spec.account;
  if (account?.uid === 0) {
    const owner = users.user(job.owner);
    if (owner?.role !== 'admin') {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `The job runs as root, which only an admin's job may, and its owner ${job.owner} ` +
          `${owner === undefined ? 'is no longer a user' : 'is no longer an admin'}: start it again as a job of an admin`,
      );
    }
  }
  await jobAccounts.checkOnThisHost(job.owner, account);
}
