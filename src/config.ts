import { homedir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from './core/errors.ts';
import { ISOLATE_PRESET, normalizeIsolation } from './core/isolation.ts';
import type { JobIsolation } from './core/job.ts';
import { isLoopbackHost } from './core/loopback.ts';
import { SPEC_LIMITS } from './core/spec.ts';
import { LOG_FORMATS, type LogFormat } from './server-log-format.ts';

/**
 * Server settings from the environment. This module is the server's only reader of `process.env`;
 * explicit options (command-line flags) win over what it returns.
 *
 * | variable | default |
 * |---|---|
 * | `JOBWORKER_LISTEN` | `127.0.0.1:8080` |
 * | `JOBWORKER_DATA_DIR` | `$XDG_DATA_HOME/jobworker`, else `~/.local/share/jobworker` |
 * | `JOBWORKER_LOG_LEVEL` | `info` |
 * | `JOBWORKER_LOG_FORMAT` | `pretty` when the log goes to a terminal, else `json` |
 * | `NO_COLOR` | unset: a pretty log on a terminal is coloured |
 * | `JOBWORKER_OUTPUT_CAP` | `1G`: newest bytes kept per stream of each job |
 * | `JOBWORKER_MAX_RUNNING` | `10000`: most jobs this server runs at once |
 * | `JOBWORKER_MAX_QUEUES` | `1000`: most queues before a submission naming a new one is refused (`none`: any number) |
 * | `JOBWORKER_DEFAULT_TIMEOUT` | `none`: the timeout of a job that sets none |
 * | `JOBWORKER_KEEP_JOBS` | `100000`: most finished jobs kept (`none`: any number) |
 * | `JOBWORKER_KEEP_FOR` | `30d`: how long a finished job is kept (`none`: forever) |
 * | `JOBWORKER_HOMES_DIR` | `/var/lib/jobworker/homes`: where pool accounts' homes are made |
 * | `JOBWORKER_IO_DIR` | unset: `$TMPDIR/jobworker-io-<hash of the data directory>`, where each job's io directory is made |
 * | `JOBWORKER_SINGLE_ACCOUNT` | unset: `1` or `true` runs every job as a non-root server's own account |
 * | `JOBWORKER_ADMIN_RUN_AS` | unset: the account of admin jobs without a run-as of their own (else a pool account) |
 * | `JOBWORKER_TASKS` | unset: the tasks file, named task definitions (docs/tasks.md); none when unset |
 * | `JOBWORKER_TLS_CERT`, `JOBWORKER_TLS_KEY` | unset: the server's own CA issues its certificate |
 * | `JOBWORKER_CLIENT_CA` | unset: client certificates chain to the server's own CA |
 * | `JOBWORKER_INSECURE_HTTP` | unset: HTTPS; `1` serves plain HTTP (loopback only) |
 * | `JOBWORKER_METRICS_LISTEN` | unset: `/metrics` only on the main address; a loopback `host:port` also serves it there, plain HTTP, no credentials |
 * | `JOBWORKER_WEBHOOK_ALLOW` | unset: comma-separated CIDRs users' own webhooks may reach although private (docs/webhooks.md) |
 * | `JOBWORKER_STORE` | unset: SQLite in the data directory; `postgres://user@host/db` for PostgreSQL (docs/storage.md) |
 * | `JOBWORKER_STORE_POOL` | `10`: most connections to PostgreSQL this server opens |
 * | `JOBWORKER_NODE_ID` | the host name: this node's id in a cluster (docs/cluster.md) |
 * | `JOBWORKER_ADVERTISE_URL` | unset: the URL other nodes reach this one at (required with PostgreSQL) |
 * | `JOBWORKER_NODE_TIMEOUT` | `30s`: a node silent this long is declared lost |
 * | `JOBWORKER_CLUSTER_SECRET_FILE` | unset: the secret nodes sign forwarded calls with (docs/cluster.md) |
 * | `JOBWORKER_CLUSTER_CA` | unset: the CA peers' HTTPS certificates chain to (else the system's) |
 * | `UV_THREADPOOL_SIZE` | `4`: libuv's thread pool (Node's own setting); webhooks' DNS lookups take half of it at most |
 */
export interface ServerConfig {
  /** `host:port` (`[::1]:port` for IPv6); port 0 picks a free port. */
  readonly listen: string;
  readonly dataDir: string;
  readonly logLevel: string;
  /** `pretty` or `json`; undefined picks by whether the log goes to a terminal. */
  readonly logFormat: string | undefined;
  /** `NO_COLOR` set to a non-empty value (https://no-color.org). */
  readonly noColor: boolean;
  /** Newest bytes kept per stream of each job (`512M`, `1G`, or bytes); older ones are freed. */
  readonly outputCap: string;
  /** Most jobs this server runs at once, all queues together; more wait in their queues. */
  readonly maxRunning: string;
  /** Most queues the store holds before a submission naming a new one is refused; `none`: no limit. */
  readonly maxQueues: string;
  /** The timeout of a job that sets none (`60s`, `2h`), or `none`. */
  readonly defaultTimeout: string;
  /** Most finished jobs kept, the newest; `none` for any number, `0` for none. */
  readonly keepJobs: string;
  /** How long a finished job is kept after it finished (`30d`, `12h`); `none` for ever. */
  readonly keepFor: string;
  /** Where the homes of pool accounts are made (`<homesDir>/<user>`); outside the data directory. */
  readonly homesDir: string;
  /** Where each job's io directory is made (`<ioDir>/<id>`); undefined: the engine's default. */
  readonly ioDir: string | undefined;
  /** A non-root server runs every job, `user` jobs too, as its own account. */
  readonly singleAccount: boolean;
  /** The OS account admin jobs run as when their admin has none configured; undefined: the pool. */
  readonly adminRunAs: string | undefined;
  /** The tasks file (`serve --tasks`), or undefined for none. */
  readonly tasks: string | undefined;
  /** The server's own certificate and key (PEM files), instead of one its CA issues. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** The CA (PEM file) client certificates must chain to, instead of the server's own. */
  readonly clientCa: string | undefined;
  /** Plain HTTP instead of HTTPS: `JOBWORKER_INSECURE_HTTP=1`. */
  readonly insecureHttp: boolean;
  /** Limits of a job that sets none, after its queue's and its user's: `memory=1G,cpu=2,pids=512`. */
  readonly defaultLimits: string;
  /** Limits no job may exceed, in the same form. */
  readonly maxLimits: string;
  /** A loopback `host:port` that serves `/metrics` without credentials (docs/metrics.md). */
  readonly metricsListen: string | undefined;
  /** CIDRs users' own webhooks may reach although private or loopback (docs/webhooks.md). */
  readonly webhookAllow: readonly string[];
  /**
   * The threads of libuv's pool, which the server's file work and DNS lookups share: Node's own
   * `UV_THREADPOOL_SIZE` (1 to 1024), else its default, 4.
   */
  readonly threadPoolSize: number;
  /** The store: undefined for SQLite in the data directory, or a `postgres://` URL (docs/storage.md). */
  readonly store: string | undefined;
  /** Most PostgreSQL connections this server opens. */
  readonly storePool: string;
  /** This node's id in a cluster; undefined: the host name. */
  readonly nodeId: string | undefined;
  /** The base URL other nodes reach this node at (docs/cluster.md). */
  readonly advertiseUrl: string | undefined;
  /** How long a node may go without a heartbeat before it is declared lost (`30s`). */
  readonly nodeTimeout: string;
  /** The cluster secret's file (docs/cluster.md). */
  readonly clusterSecretFile: string | undefined;
  /** The CA (PEM) peers' HTTPS certificates chain to. */
  readonly clusterCa: string | undefined;
}

export const SERVER_DEFAULTS = {
  listen: '127.0.0.1:8080',
  logLevel: 'info',
  outputCap: '1G',
  maxRunning: '10000',
  maxQueues: '1000',
  defaultTimeout: 'none',
  keepJobs: '100000',
  keepFor: '30d',
  homesDir: '/var/lib/jobworker/homes',
  defaultLimits: '',
  maxLimits: '',
  storePool: '10',
  nodeTimeout: '30s',
} as const satisfies Partial<ServerConfig>;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export function readServerConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const value = (name: string) => (env[name] === '' ? undefined : env[name]);
  return {
    listen: value('JOBWORKER_LISTEN') ?? SERVER_DEFAULTS.listen,
    dataDir: value('JOBWORKER_DATA_DIR') ?? defaultDataDir(env),
    logLevel: value('JOBWORKER_LOG_LEVEL') ?? SERVER_DEFAULTS.logLevel,
    logFormat: value('JOBWORKER_LOG_FORMAT'),
    noColor: value('NO_COLOR') !== undefined,
    outputCap: value('JOBWORKER_OUTPUT_CAP') ?? SERVER_DEFAULTS.outputCap,
    maxRunning: value('JOBWORKER_MAX_RUNNING') ?? SERVER_DEFAULTS.maxRunning,
    maxQueues: value('JOBWORKER_MAX_QUEUES') ?? SERVER_DEFAULTS.maxQueues,
    defaultTimeout: value('JOBWORKER_DEFAULT_TIMEOUT') ?? SERVER_DEFAULTS.defaultTimeout,
    keepJobs: value('JOBWORKER_KEEP_JOBS') ?? SERVER_DEFAULTS.keepJobs,
    keepFor: value('JOBWORKER_KEEP_FOR') ?? SERVER_DEFAULTS.keepFor,
    homesDir: value('JOBWORKER_HOMES_DIR') ?? SERVER_DEFAULTS.homesDir,
    ioDir: value('JOBWORKER_IO_DIR'),
    singleAccount: ['1', 'true', 'yes'].includes(value('JOBWORKER_SINGLE_ACCOUNT')?.toLowerCase() ?? ''),
    adminRunAs: value('JOBWORKER_ADMIN_RUN_AS'),
    tasks: value('JOBWORKER_TASKS'),
    tlsCert: value('JOBWORKER_TLS_CERT'),
    tlsKey: value('JOBWORKER_TLS_KEY'),
    clientCa: value('JOBWORKER_CLIENT_CA'),
    insecureHttp: ['1', 'true', 'yes'].includes(value('JOBWORKER_INSECURE_HTTP')?.toLowerCase() ?? ''),
    defaultLimits: value('JOBWORKER_DEFAULT_LIMITS') ?? SERVER_DEFAULTS.defaultLimits,
    maxLimits: value('JOBWORKER_MAX_LIMITS') ?? SERVER_DEFAULTS.maxLimits,
    metricsListen: value('JOBWORKER_METRICS_LISTEN'),
    webhookAllow: (value('JOBWORKER_WEBHOOK_ALLOW') ?? '')
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean),
    threadPoolSize: threadPoolSizeOf(value('UV_THREADPOOL_SIZE')),
    store: value('JOBWORKER_STORE'),
    storePool: value('JOBWORKER_STORE_POOL') ?? SERVER_DEFAULTS.storePool,
    nodeId: value('JOBWORKER_NODE_ID'),
    advertiseUrl: value('JOBWORKER_ADVERTISE_URL'),
    nodeTimeout: value('JOBWORKER_NODE_TIMEOUT') ?? SERVER_DEFAULTS.nodeTimeout,
    clusterSecretFile: value('JOBWORKER_CLUSTER_SECRET_FILE'),
    clusterCa: value('JOBWORKER_CLUSTER_CA'),
  };
}

/** `$XDG_DATA_HOME/jobworker`, or `~/.local/share/jobworker`. */
/** `UV_THREADPOOL_SIZE` as libuv reads it: a whole number from 1 to 1024, else its default, 4. */
function threadPoolSizeOf(text: string | undefined): number {
  const size = Number(text);
  return Number.isInteger(size) && size >= 1 && size <= 1024 ? size : 4;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.local', 'share'), 'jobworker');
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port` (`[::1]:8080` for IPv6). Any address: the server serves it over TLS. */
export function parseListen(text: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !(port >= 0 && port <= 65535)) {
    throw ValidationError.expected(
      'listen',
      'an address like 127.0.0.1:8080, 0.0.0.0:8443 or [::1]:8080 (port 0 picks one)',
      text,
    );
  }
  return { host, port };
}

/**
 * `insecureHttp` as asked, refused on any address but a loopback one: without TLS, tokens and
 * job output would cross the network in clear text.
 */
export function checkInsecureHttp(listen: ListenAddress, insecureHttp: boolean): boolean {
  if (insecureHttp && !isLoopbackHost(listen.host)) {
    throw new ValidationError(
      'insecureHttp',
      `Refusing to serve plain HTTP on ${listen.host}:${listen.port}: --insecure-http is allowed only on a ` +
        'loopback address (127.0.0.1, ::1 or localhost) and the Unix socket, where tokens and output never ' +
        'cross a network in clear text. Leave out --insecure-http to serve HTTPS (TLS 1.3) on any address.',
    );
  }
  return insecureHttp;
}

/**
 * The metrics address (`serve --metrics-listen`): loopback only, since it answers plain HTTP with no
 * credentials; a remote Prometheus scrapes the main address with the metrics token instead.
 */
export function parseMetricsListen(text: string): ListenAddress {
  let address: ListenAddress;
  try {
    address = parseListen(text);
  } catch {
    throw ValidationError.expected('metricsListen', 'a loopback address like 127.0.0.1:9464', text);
  }
  if (!isLoopbackHost(address.host)) {
    throw new ValidationError(
      'metricsListen',
      `Refusing to serve metrics without credentials on ${text}: --metrics-listen takes a loopback address ` +
        '(127.0.0.1, ::1 or localhost). Scrape the main address with the metrics token from elsewhere (docs/metrics.md).',
    );
  }
  return address;
}

/**
 * `runWithoutToken` as asked, refused on any address but a loopback one: it lets anyone who can
 * reach the port run commands, which is for local use only (docs/compat.md).
 */
export function checkRunWithoutToken(listen: ListenAddress, runWithoutToken: boolean): boolean {
  if (runWithoutToken && !isLoopbackHost(listen.host)) {
    throw new ValidationError(
      'runWithoutToken',
      `Refusing --run-without-token on ${listen.host}:${listen.port}: it is allowed only on a loopback ` +
        'address (127.0.0.1, ::1 or localhost), for local use. Leave it out and send a token.',
    );
  }
  return runWithoutToken;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/** `64K`, `512M`, `1G`, `2T` or plain bytes, at least 64 KiB: the output cap per stream. */
export function parseOutputCap(text: string): number {
  const match = /^([0-9]{1,15})([KMGT]?)(i?B)?$/i.exec(text.trim());
  const bytes = match ? Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]! : Number.NaN;
  if (!(Number.isSafeInteger(bytes) && bytes >= 64 * 1024)) {
    throw ValidationError.expected('outputCap', 'a size of at least 64K, such as 512M or 1G', text);
  }
  return bytes;
}

/** A positive whole number of jobs, at most a million. */
export function parseMaxRunning(text: string): number {
  const n = /^[0-9]{1,7}$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= 1_000_000)) {
    throw ValidationError.expected('maxRunning', 'a whole number of jobs from 1 to 1000000', text);
  }
  return n;
}

/**
 * The most queues a submission may bring the store to (docs/queues.md, "How many queues"): a whole
 * number from 1 to a million, or `none` (null) for no limit.
 */
export function parseMaxQueues(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === 'none') return null;
  const n = /^[0-9]{1,7}$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!(n >= 1 && n <= 1_000_000)) {
    throw ValidationError.expected('maxQueues', 'a whole number of queues from 1 to 1000000, or none', text);
  }
  return n;
}

const DURATION = /^([0-9]{1,10}(?:\.[0-9]{1,3})?)(ms|s|m|h|d)?$/;
const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration as the CLI writes it (`500ms`, `60s`, `5m`, `2h`, `30d`, or plain seconds), or NaN. */
function durationMs(text: string): number {
  const match = DURATION.exec(text);
  const unit = (match?.[2] ?? 's') as keyof typeof DURATION_MS;
  return match ? Math.round(Number(match[1]) * DURATION_MS[unit]) : Number.NaN;
}

/**
 * The server's default job timeout: `none` (null), or a duration from 1 ms to a job's longest
 * timeout (366 days).
 */
export function parseDefaultTimeout(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === 'none') return null;
  const ms = durationMs(trimmed);
  if (!(ms >= 1 && ms <= SPEC_LIMITS.timeoutMs)) {
    throw ValidationError.expected(
      'defaultTimeout',
      'a duration such as 60s, 5m or 2h (at most 366d), or `none`',
      text,
    );
  }
  return ms;
}

/** `none` (no limit) or a whole number of finished jobs to keep, 0 to a billion. */
export function parseKeepJobs(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === 'none') return null;
  const n = /^[0-9]{1,10}$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!(n >= 0 && n <= 1_000_000_000)) {
    throw ValidationError.expected(
      'keepJobs',
      'a whole number of jobs from 0 to 1000000000, or `none`',
      text,
    );
  }
  return n;
}

/** `none` (for ever) or a duration such as `30d`, `12h`, `90m`, `3600s`; `0` deletes at the next pass. */
export function parseKeepFor(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === 'none') return null;
  const ms = durationMs(trimmed);
  if (!(ms >= 0 && Number.isSafeInteger(ms))) {
    throw ValidationError.expected('keepFor', 'a duration such as 30d, 12h or 90m, 0, or `none`', text);
  }
  return ms;
}

export function parseLogFormat(text: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(text)) {
    throw ValidationError.expected('logFormat', '`pretty` or `json`', text);
  }
  return text as LogFormat;
}

export function checkLogLevel(level: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw ValidationError.expected('logLevel', `one of ${LOG_LEVELS.join(', ')}`, level);
  }
  return level;
}

/**
 * `serve --default-isolation`: `isolate` (what `start --isolate` asks for), `none`, or the JSON of
 * an `isolation` object; null for none.
 */
export function parseDefaultIsolation(text: string): JobIsolation | null {
  const trimmed = text.trim();
  if (trimmed === 'none') return null;
  if (trimmed === 'isolate') return ISOLATE_PRESET;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    throw ValidationError.expected(
      'defaultIsolation',
      '`isolate`, `none` or the JSON of an isolation object',
      text,
    );
  }
  return normalizeIsolation(value, 'defaultIsolation');
}

/** `serve --store`: a `postgres://` or `postgresql://` URL naming a database. */
export function parseStoreUrl(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || !/^postgres(ql)?:$/.test(url.protocol) || url.pathname.length <= 1) {
    throw ValidationError.expected(
      'store',
      'a PostgreSQL URL naming a database, such as postgres://jobworker@db.example:5432/jobworker (leave it out for SQLite in the data directory)',
      redactUrlPassword(text),
    );
  }
  return text;
}

/** `text` with whatever stands between `user:` and `@` replaced by `***`, parsable or not. */
function redactUrlPassword(text: string): string {
  // Greedy up to the last `@`: a password may hold an unencoded `@` or `/` (a generated one often
  // does), and hiding a little of the host is better than showing any of the password.
  return text.replace(/\/\/([^:@/]*):.*@/, '//$1:***@');
}

/** `serve --store-pool`: connections to PostgreSQL, 1 to 1000. */
export function parseStorePool(text: string): number {
  const n = /^[0-9]{1,4}$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= 1000))
    throw ValidationError.expected('storePool', 'a whole number of connections from 1 to 1000', text);
  return n;
}

/**
 * `serve --node-id`, the Worker's `node` (`field`): 1 to 63 letters, digits, dots, dashes or
 * underscores (it names the node in job records).
 */
export function parseNodeId(text: unknown, field = 'nodeId'): string {
  if (typeof text !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(text)) {
    throw ValidationError.expected(
      field,
      'a node id of 1 to 63 letters, digits, dots, dashes or underscores',
      text,
    );
  }
  return text;
}

/** `serve --advertise-url`: the `https://` (or loopback `http://`) base URL peers reach this node at. */
export function parseAdvertiseUrl(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    !['http:', 'https:'].includes(url.protocol) ||
    (url.pathname !== '/' && url.pathname !== '')
  ) {
    throw ValidationError.expected('advertiseUrl', 'a base URL such as https://node1.example:8443', text);
  }
  return url.origin;
}

/** `serve --node-timeout`: from 2 s to 1 h. */
export function parseNodeTimeout(text: string): number {
  const ms = durationMs(text.trim());
  if (!(ms >= 2000 && ms <= 3_600_000)) {
    throw ValidationError.expected('nodeTimeout', 'a duration from 2s to 1h, such as 30s', text);
  }
  return ms;
}
