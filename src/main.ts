import { EventEmitter, once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo, Server } from 'node:net';
import { join, resolve } from 'node:path';
import pino from 'pino';
import packageJson from '../package.json' with { type: 'json' };
import { LOG_SERIALIZERS, REDACT_PATHS } from './api/rest/log-serializers.ts';
import { buildRestApp } from './api/rest/rest-app.ts';
import {
  closeSocket,
  listenOnSocket,
  MAX_SOCKET_PATH_BYTES,
  SOCKET_FILE,
} from './api/rest/socket-listener.ts';
import { ensureAdminToken } from './auth/admin-token.ts';
import { Authenticator } from './auth/authenticator.ts';
import { TokenStore } from './auth/token-store.ts';
import {
  checkLogLevel,
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
import { systemClock } from './core/clock.ts';
import { JobEngine } from './engine/job-engine.ts';
import { LogDestination, type LogTarget } from './log-destination.ts';
import { checkForLostDatabase, DATABASE_FILE } from './lost-database.ts';
import { MemoryRelief } from './memory-relief.ts';
import { type DataDirLock, lockDataDir } from './runtime/data-dir-lock.ts';
import { describeLooser, restrictDataDir } from './runtime/data-dir-permissions.ts';
import { type PrettyLogOptions, prettyLogDestination } from './server-log-format.ts';
import { JobService } from './service/job-service.ts';
import { SqliteJobStore } from './store/sqlite/sqlite-job-store.ts';

/**
 * The composition root: the only module that knows which store, engine and adapters make up a
 * server. `jobworker serve` calls `runServer` and, on SIGTERM or SIGINT, `close()`.
 */

export interface ServerOptions {
  /** `host:port`; default `JOBWORKER_LISTEN`, else 127.0.0.1:8080. Port 0 picks a free port. Loopback only. */
  listen?: string;
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
}

export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:43123`. */
  url: string;
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
      return await startOnDataDir({
        listen,
        dataDir,
        logger,
        lock,
        outputCapBytes,
        maxRunning,
        defaultTimeoutMs,
        retention,
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

/** Everything after the data directory is ours: tokens, store, engine, HTTP. */
async function startOnDataDir({
  listen,
  dataDir,
  logger,
  lock,
  outputCapBytes,
  maxRunning,
  defaultTimeoutMs,
  retention,
}: {
  listen: ListenAddress;
  dataDir: string;
  logger: pino.Logger;
  lock: DataDirLock;
  outputCapBytes: number;
  maxRunning: number;
  defaultTimeoutMs: number | null;
  retention: { keepJobs: number | null; keepForMs: number | null };
}): Promise<RunningServer> {
  const tokens = await TokenStore.open(dataDir);
  const admin = await ensureAdminToken(dataDir, tokens);
  if (admin.created) logger.info({ adminTokenFile: admin.path }, 'admin token created');

  const store = await SqliteJobStore.open(join(dataDir, DATABASE_FILE));
  let engine: JobEngine;
  try {
    engine = await JobEngine.open({
      dataDir,
      store,
      outputCapBytes,
      maxRunning,
      defaultTimeoutMs,
      ...retention,
      logger: logger.child({ component: 'engine' }),
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  const service = new JobService(engine);
  const app = await buildRestApp({
    service,
    authenticator: new Authenticator(tokens),
    logger,
    version: packageJson.version,
  }).catch(async (err: unknown) => {
    await engine.close();
    await store.close();
    throw err;
  });

  const changes = new EventEmitter();
  let connections = 0;
  let closing = false;
  app.server.on('connection', (socket) => {
    connections++;
    socket.once('close', () => {
      connections--;
      changes.emit('change');
    });
  });
  service.on('follower:close', () => changes.emit('change'));
  // RSS back down after a burst of follows or jobs (see MemoryRelief; needs `--expose-gc`), never
  // while an output stream is open: its pause would reach the client.
  const relief = MemoryRelief.forThisProcess(systemClock, () => service.followers > 0);
  if (relief) {
    service.on('follower:close', () => relief.activity());
    engine.on('job:finished', () => relief.activity());
    relief.activity(); // starting up is a burst too
  }
  // Connections that finish their response while the server closes are closed at once, not kept alive.
  app.server.on('request', (_req, res) => {
    res.once('close', () => {
      if (closing) setImmediate(() => app.server.closeIdleConnections());
    });
  });

  const socketPath = join(dataDir, SOCKET_FILE);
  const socketFits = Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH_BYTES;
  let socket: Server | undefined;
  try {
    await app.listen({ host: listen.host, port: listen.port });
    if (socketFits) socket = await listenOnSocket(app.server, socketPath);
  } catch (err) {
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
  const url = `http://${host}:${address.port}`;
  logger.info(
    {
      url,
      socket: socket ? socketPath : null,
      dataDir,
      adminTokenFile: admin.path,
      cgroups: engine.cgroupMode,
    },
    'jobworker listening',
  );

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing = true;
    const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS).unref();
    try {
      if (socket) await closeSocket(socket, socketPath);
      await service.shutdown();
      await app.close();
    } finally {
      clearTimeout(force);
      relief?.close();
      await engine.close();
      await store.close();
      await lock.release();
      logger.info({ url }, 'jobworker closed; running jobs keep running');
      await flushLog(logger);
    }
  };
  const idle = async (): Promise<void> => {
    while (service.followers > 0 || connections > 0) await once(changes, 'change');
  };

  return {
    url,
    socketPath: socket ? socketPath : null,
    dataDir,
    adminTokenFile: admin.path,
    close: () => {
      closed ??= close();
      return closed;
    },
    diagnostics: {
      followers: () => service.followers,
      connections: () => connections,
      idle,
    },
  };
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
