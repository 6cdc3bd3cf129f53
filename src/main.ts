import { EventEmitter, once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import { join, relative, resolve } from 'node:path';
import pino from 'pino';
import packageJson from '../package.json' with { type: 'json' };
import { JobAccounts, type ServerIdentity } from './accounts/job-accounts.ts';
import { ConnectionTracker } from './api/rest/connection-tracker.ts';
import { defaultWebRoot } from './api/rest/dashboard-routes.ts';
import { LOG_SERIALIZERS, REDACT_PATHS } from './api/rest/log-serializers.ts';
import { buildRestApp, type RunRouteOptions } from './api/rest/rest-app.ts';
import {
  closeSocket,
  listenOnSocket,
  MAX_SOCKET_PATH_BYTES,
  SOCKET_FILE,
} from './api/rest/socket-listener.ts';
import { ensureAdminToken } from './auth/admin-token.ts';
import { Authenticator } from './auth/authenticator.ts';
import type { FailedAuthLimits } from './auth/failed-auth-limiter.ts';
import { importLegacyTokens, TOKENS_FILE } from './auth/legacy-token-file.ts';
import { ServerTls } from './auth/tls/server-tls.ts';
import { UserDirectory } from './auth/user-directory.ts';
import {
  checkInsecureHttp,
  checkLogLevel,
  checkRunWithoutToken,
  type ListenAddress,
  parseDefaultTimeout,
  parseKeepFor,
  parseKeepJobs,
  parseListen,
  parseLogFormat,
  parseMaxRunning,
  parseOutputCap,
  readServerConfig,
} from './config.ts';
import { type Clock, systemClock } from './core/clock.ts';
import { ValidationError } from './core/errors.ts';
import { JobEngine } from './engine/job-engine.ts';
import { LogDestination, type LogTarget } from './log-destination.ts';
import { checkForLostDatabase, DATABASE_FILE } from './lost-database.ts';
import { MemoryRelief } from './memory-relief.ts';
import { type DataDirLock, lockDataDir } from './runtime/data-dir-lock.ts';
import { describeLooser, restrictDataDir } from './runtime/data-dir-permissions.ts';
import { type PrettyLogOptions, prettyLogDestination } from './server-log-format.ts';
import { AuditLog } from './service/audit-log.ts';
import { CertificateService } from './service/certificate-service.ts';
import { JobService } from './service/job-service.ts';
import { UserService } from './service/user-service.ts';
import { SqliteJobStore } from './store/sqlite/sqlite-job-store.ts';

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
  /** Timeout of a job that sets none (`60s`, `none`); default `JOBWORKER_DEFAULT_TIMEOUT`, else none. */
  defaultTimeout?: string;
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
   * Answer `POST /run` without credentials, as the user `admin`, from loopback only (the take-home
   * starter's curl examples; docs/compat.md). Every other route still needs credentials. Refused
   * unless `listen` is a loopback address.
   */
  runWithoutToken?: boolean;
  /** Working directory of `POST /run` jobs that name none; default the server's own (`process.cwd()`). */
  runCwd?: string;
}

export interface RunningServer {
  /** Base URL, e.g. `https://127.0.0.1:43123` (`http://` with `insecureHttp`). */
  url: string;
  /** The CA file that verifies the server's certificate (`<dataDir>/tls/ca.pem`); null with plain HTTP or an own certificate. */
  caFile: string | null;
  /**
   * The Unix socket the server also listens on (`<dataDir>/server.sock`, mode 0600), or null when
   * the data directory's path is too long for one. Local clients that use it know they reach the
   * server that owns the data directory.
   */
  socketPath: string | null;
  dataDir: string;
  /** The file holding the admin token (mode 0600). */
  adminTokenFile: string;
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
    ...(checkRunWithoutToken(listen, options.runWithoutToken === true) ? { withoutTokenAs: 'admin' } : {}),
  };
  const tlsFiles = {
    certFile: options.tlsCert ?? config.tlsCert,
    keyFile: options.tlsKey ?? config.tlsKey,
    clientCaFile: options.clientCa ?? config.clientCa,
  };
  const clock = options.clock ?? systemClock;
  const dataDir = resolve(options.dataDir ?? config.dataDir);
  const pretty = prettyLogOptions(options.logFormat ?? config.logFormat, options.logStream, config.noColor);
  const logger = createLogger(checkLogLevel(options.logLevel ?? config.logLevel), options.logStream, pretty);
  const outputCapBytes = parseOutputCap(options.outputCap ?? config.outputCap);
  const maxRunning = parseMaxRunning(options.maxRunning ?? config.maxRunning);
  const defaultTimeoutMs = parseDefaultTimeout(options.defaultTimeout ?? config.defaultTimeout);
  const retention = {
    keepJobs: parseKeepJobs(options.keepJobs ?? config.keepJobs),
    keepForMs: parseKeepFor(options.keepFor ?? config.keepFor),
  };
  const accounts = {
    homesDir: resolve(options.homesDir ?? config.homesDir),
    singleAccount: options.singleAccount ?? config.singleAccount,
    adminRunAs: options.adminRunAs ?? config.adminRunAs,
  };
  checkHomesDir(accounts.homesDir, dataDir);

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
        outputCapBytes,
        maxRunning,
        defaultTimeoutMs,
        retention,
        accounts,
        authLimits: options.authLimits ?? {},
        run,
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
  outputCapBytes,
  maxRunning,
  defaultTimeoutMs,
  retention,
  accounts: accountOptions,
  authLimits,
  run,
  clock,
}: {
  clock: Clock;
  run: RunRouteOptions;
  accounts: { homesDir: string; singleAccount: boolean; adminRunAs: string | undefined };
  listen: ListenAddress;
  tls: ServerTls | undefined;
  dataDir: string;
  logger: pino.Logger;
  lock: DataDirLock;
  outputCapBytes: number;
  maxRunning: number;
  defaultTimeoutMs: number | null;
  retention: { keepJobs: number | null; keepForMs: number | null };
  authLimits: FailedAuthLimits;
}): Promise<RunningServer> {
  const store = await SqliteJobStore.open(join(dataDir, DATABASE_FILE));
  const audit = new AuditLog(store.users, { logger: logger.child({ component: 'audit' }) });
  let admin: Awaited<ReturnType<typeof ensureAdminToken>>;
  let accounts: UserDirectory;
  try {
    const imported = await importLegacyTokens(dataDir, store.users);
    if (imported > 0) logger.info({ tokens: imported }, `imported ${TOKENS_FILE} into the user store`);
    accounts = await UserDirectory.open(store.users, {
      clock,
      onError: (err) => logger.error({ err }, 'could not record when a token was last used'),
    });
    admin = await ensureAdminToken(dataDir, accounts);
  } catch (err) {
    await store.close();
    throw err;
  }
  if (admin.created) logger.info({ adminTokenFile: admin.path }, 'admin token created');
  if (admin.disabled)
    logger.warn({ adminTokenFile: admin.path }, 'the user admin is disabled: admin.token does not work');

  let jobAccounts: JobAccounts;
  try {
    jobAccounts = await JobAccounts.open({
      dataDir,
      ...accountOptions,
      onHomesWarning: (message) => logger.warn({ homesDir: accountOptions.homesDir }, message),
    });
  } catch (err) {
    await store.close();
    throw err;
  }

  let engine: JobEngine;
  try {
    engine = await JobEngine.open({
      dataDir,
      store,
      outputCapBytes,
      maxRunning,
      defaultTimeoutMs,
      ...retention,
      clock,
      logger: logger.child({ component: 'engine' }),
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  const service = new JobService(engine, { accounts: jobAccounts, audit, clock });
  const certificates = new CertificateService(
    tls?.issued ? { issued: tls.issued, caPem: tls.certificateAuthority.certPem } : null,
    accounts,
    { audit, clock },
  );
  const app = await buildRestApp({
    service,
    users: new UserService(accounts, audit, {
      clock,
      checkRunAs: (name, role) => jobAccounts.checkRunAs(name, role),
      onUserRemoved: async (name, who) => {
        await certificates.revokeAllOf(who, name);
      },
    }),
    authenticator: new Authenticator(accounts, {
      audit,
      clock,
      logger: logger.child({ component: 'auth' }),
      limits: authLimits,
    }),
    logger,
    version: packageJson.version,
    run,
    webRoot: defaultWebRoot(),
    ...(tls ? { https: tls.serverOptions() } : {}),
    certificates,
  }).catch(async (err: unknown) => {
    await engine.close();
    await store.close();
    throw err;
  });

  const changes = new EventEmitter();
  const tracker = new ConnectionTracker(app.server, tls !== undefined, () => changes.emit('change'));
  service.on('follower:close', () => changes.emit('change'));
  // RSS back down after a burst of follows or jobs (see MemoryRelief; needs `--expose-gc`), never
  // while an output stream is open: its pause would reach the client.
  const relief = MemoryRelief.forThisProcess(clock, () => service.followers > 0);
  if (relief) {
    service.on('follower:close', () => relief.activity());
    engine.on('job:finished', () => relief.activity());
    relief.activity(); // starting up is a burst too
  }
  if (tls) tls.attach(app.server as unknown as Http2SecureServer);

  const socketPath = join(dataDir, SOCKET_FILE);
  const socketFits = Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH_BYTES;
  let socket: Server | undefined;
  try {
    await app.listen({ host: listen.host, port: listen.port });
    if (socketFits) socket = await listenOnSocket(app.server, socketPath);
  } catch (err) {
    relief?.close();
    tls?.close();
    await app.close();
    await engine.close();
    await store.close();
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
  logger.info(
    {
      url,
      socket: socket ? socketPath : null,
      tls: tls ? 'TLSv1.3' : 'off (--insecure-http)',
      dataDir,
      adminTokenFile: admin.path,
      cgroups: engine.cgroupMode,
      jobAccounts: describeAccounts(jobAccounts.server),
    },
    'jobworker listening',
  );

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    const force = clock.setTimer(() => tracker.closeAll(), CLOSE_GRACE_MS);
    try {
      tls?.close();
      if (socket) await closeSocket(socket, socketPath);
      await service.shutdown();
      // Idle connections end now, busy ones once their requests are answered.
      tracker.closeIdle();
      await app.close();
    } finally {
      force.clear();
      relief?.close();
      await engine.close();
      await audit.flush();
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
    close: () => {
      closed ??= close();
      return closed;
    },
    diagnostics: {
      followers: () => service.followers,
      connections: () => tracker.count,
      idle,
    },
  };
}

/** The homes of job accounts must be reachable by them: never inside the owner-only data directory. */
function checkHomesDir(homesDir: string, dataDir: string): void {
  const rel = relative(dataDir, homesDir);
  if (rel === '' || !(rel.startsWith('..') || rel.startsWith('/'))) {
    throw new ValidationError(
      'homesDir',
      `Expected \`homesDir\` outside the data directory ${dataDir} (job accounts cannot enter it), got ${homesDir}`,
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
    serializers: { ...LOG_SERIALIZERS, err: pino.stdSerializers.err },
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
