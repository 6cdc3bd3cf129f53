import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.ts';
import { type CliContext, commonOptions, printJson } from '../cli-context.ts';
import { UsageError } from '../errors.ts';
import { writeTo } from '../output-writer.ts';
import { addRefusedClientOptions, CLIENT_OPTIONS_HELP, refuseClientOptions } from './serve-client-options.ts';

interface ServeOptions {
  listen?: string;
  dataDir?: string;
  logLevel?: string;
  logFormat?: string;
  outputCap?: string;
  maxRunning?: string;
  maxQueues?: string;
  defaultTimeout?: string;
  defaultLimits?: string;
  maxLimits?: string;
  defaultIsolation?: string;
  forceIsolation?: boolean;
  keepJobs?: string;
  keepFor?: string;
  resetStore?: boolean;
  homesDir?: string;
  ioDir?: string;
  singleAccount?: boolean;
  adminRunAs?: string;
  tasks?: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  insecureHttp?: boolean;
  runWithoutToken?: boolean;
  runCwd?: string;
  metricsListen?: string;
  webhookAllow?: string[];
  store?: string;
  storePool?: string;
  nodeId?: string;
  advertiseUrl?: string;
  nodeTimeout?: string;
  clusterSecretFile?: string;
  clusterCa?: string;
}

export function registerServe(program: Command, ctx: CliContext): void {
  const command = program
    .command('serve')
    .summary('run the jobworker server')
    .description(
      'Run the server until SIGTERM or SIGINT. Stopping the server leaves running jobs running; ' +
        'the next `serve` on the same data directory takes them over. Logs go to stdout (readable lines ' +
        'on a terminal, JSON otherwise; see --log-format), ' +
        'or to stderr with --json, whose one document on stdout says where the server is. ' +
        'Besides its address it listens on <data-dir>/server.sock (<data-dir>/server-http.sock with ' +
        '--insecure-http), which local clients use. ' +
        CLIENT_OPTIONS_HELP,
    )
    .option(
      '--listen <host:port>',
      'address to listen on, any with TLS (default: $JOBWORKER_LISTEN, else 127.0.0.1:8080; port 0 picks a free one)',
    )
    .option(
      '--tls-cert <file>',
      "own server certificate, PEM (default: $JOBWORKER_TLS_CERT, else one the server's CA in <data-dir>/tls/ issues)",
    )
    .option('--tls-key <file>', 'key of --tls-cert, PEM (default: $JOBWORKER_TLS_KEY)')
    .option(
      '--client-ca <file>',
      "CA that client certificates must chain to (default: $JOBWORKER_CLIENT_CA, else the server's own CA)",
    )
    .option(
      '--insecure-http',
      'serve plain HTTP instead of HTTPS, only on a loopback address (default: $JOBWORKER_INSECURE_HTTP=1)',
    )
    .option(
      '--data-dir <dir>',
      'database, job files and admin token (default: $JOBWORKER_DATA_DIR, else $XDG_DATA_HOME/jobworker or ~/.local/share/jobworker)',
    )
    .option('--log-level <level>', 'trace, debug, info, warn, error or fatal (default: info)')
    .option(
      '--log-format <format>',
      'pretty (lines a person reads) or json (default: $JOBWORKER_LOG_FORMAT, else pretty on a terminal, json otherwise)',
    )
    .option(
      '--output-cap <size>',
      'newest output kept per stream of each job, older bytes freed: 512M, 1G... (default: $JOBWORKER_OUTPUT_CAP, else 1G)',
    )
    .option(
      '--max-running <n>',
      'most jobs run at once, all queues together; more wait (default: $JOBWORKER_MAX_RUNNING, else 10000)',
    )
    .option(
      '--max-queues <n>',
      'most queues before a job naming a new one is refused; admins may still create queues (default: $JOBWORKER_MAX_QUEUES, else 1000; none for no limit)',
    )
    .option(
      '--default-timeout <duration>',
      'timeout of a job that sets none: 60s, 5m, 2h... or none (default: $JOBWORKER_DEFAULT_TIMEOUT, else none)',
    )
    .option(
      '--default-limits <limits>',
      "limits of a job that sets none, after its queue's and its user's defaults: memory=1G,cpu=2,pids=512,io.writeBps=10M (default: $JOBWORKER_DEFAULT_LIMITS, else none)",
    )
    .option(
      '--max-limits <limits>',
      'limits no job may exceed, in the same form; a job with none gets these (default: $JOBWORKER_MAX_LIMITS, else none)',
    )
    .option(
      '--keep-jobs <n>',
      'most finished jobs kept, the newest; older ones are deleted with their output; none: any number (default: $JOBWORKER_KEEP_JOBS, else 100000)',
    )
    .option(
      '--keep-for <duration>',
      'how long a finished job is kept: 30d, 12h, 90m; none: for ever (default: $JOBWORKER_KEEP_FOR, else 30d)',
    )
    .option(
      '--reset-store',
      'when jobworker.db is missing but job directories remain: accept the loss, stop those jobs and move their directories aside',
    )
    .option(
      '--homes-dir <dir>',
      "where pool accounts' homes are made, outside the data directory (default: $JOBWORKER_HOMES_DIR, else /var/lib/jobworker/homes)",
    )
    .option(
      '--io-dir <dir>',
      "where each job's io directory (its result and progress files) is made, outside the data directory and the same at every start (default: $JOBWORKER_IO_DIR, else jobworker-io-<hash> in the temp directory)",
    )
    .option(
      '--single-account',
      "for a server that is not root: accept that every job, users' included, runs as the server's own account (default: $JOBWORKER_SINGLE_ACCOUNT)",
    )
    .option(
      '--run-without-token',
      'for local use: answer POST /run without credentials, as the principal _run-without-token (no real user: its own jobs only), only on a loopback address; every other route still needs them (docs/compat.md)',
    )
    .option(
      '--run-cwd <dir>',
      "working directory of POST /run jobs that name none (default: the server's current directory)",
    )
    .option(
      '--default-isolation <isolation>',
      'namespaces of a job whose spec, queue and user name none: isolate (as start --isolate), none, or the JSON of an isolation object (default: none; docs/isolation.md)',
    )
    .option(
      '--force-isolation',
      'every job of a non-admin user gets at least what start --isolate asks for (its own processes, /tmp, no network); asking for less is refused',
    )
    .option(
      '--tasks <file>',
      'named task definitions and their queues, JSON or YAML (docs/tasks.md); SIGHUP reads it again (default: $JOBWORKER_TASKS)',
    )
    .option(
      '--metrics-listen <host:port>',
      'also serve GET /metrics on this loopback address, plain HTTP without credentials (default: $JOBWORKER_METRICS_LISTEN; docs/metrics.md)',
    )
    .option(
      '--webhook-allow <cidr...>',
      "private or loopback networks users' own webhooks may reach, e.g. 10.0.0.0/8 (default: $JOBWORKER_WEBHOOK_ALLOW; docs/webhooks.md)",
    )
    .option(
      '--store <url>',
      'keep jobs, users and webhooks in PostgreSQL (postgres://user@host/db), shared by the nodes of a cluster (default: $JOBWORKER_STORE, else SQLite in the data directory; docs/storage.md)',
    )
    .option('--store-pool <n>', 'most connections to PostgreSQL (default: $JOBWORKER_STORE_POOL, else 10)')
    .option(
      '--node-id <id>',
      "this node's id in a cluster (default: $JOBWORKER_NODE_ID, else the host name; docs/cluster.md)",
    )
    .option(
      '--advertise-url <url>',
      'the base URL other nodes reach this one at, e.g. https://node1.example:8443 (default: $JOBWORKER_ADVERTISE_URL, else the address it listens at)',
    )
    .option(
      '--node-timeout <duration>',
      'a node silent this long is declared lost and its jobs decided (default: $JOBWORKER_NODE_TIMEOUT, else 30s)',
    )
    .option(
      '--cluster-secret-file <file>',
      'the secret the nodes of a cluster share to forward calls to each other: 32+ random bytes as hex, owner-only (default: $JOBWORKER_CLUSTER_SECRET_FILE)',
    )
    .option(
      '--cluster-ca <file>',
      "the CA (PEM) other nodes' HTTPS certificates chain to (default: $JOBWORKER_CLUSTER_CA, else the system's CAs)",
    )
    .option(
      '--admin-run-as <account>',
      'the OS account admin jobs run as when their admin has none configured, e.g. root (default: $JOBWORKER_ADMIN_RUN_AS, else a pool account)',
    );
  command.option('--json', 'print where the server is as one JSON document on stdout; logs go to stderr');
  addRefusedClientOptions(command).action(async (options: ServeOptions) => {
    const common = commonOptions(command);
    refuseClientOptions(common);
    const json = common.json === true;
    const dataDir =
      options.dataDir !== undefined
        ? resolve(ctx.cwd, options.dataDir)
        : ctx.env.dataDirFromEnv
          ? ctx.env.dataDir
          : undefined;
    if (options.store !== undefined && storeUrlHasPassword(options.store)) {
      await notice(
        ctx,
        "jobworker: warning: the --store URL holds a password, which every local user and every job can read in this process's command line (/proc/PID/cmdline): " +
          'give the URL in $JOBWORKER_STORE instead (the environment is owner-only), or the password in ~/.pgpass or $PGPASSFILE (docs/storage.md)\n',
      );
    }
    // Loaded here so that the client commands do not load the server.
    const { runServer } = await import('../../main.ts');
    const stopped = waitForSignal();
    const server = await runServer({
      listen: options.listen,
      dataDir,
      logLevel: options.logLevel,
      logFormat: options.logFormat,
      outputCap: options.outputCap,
      maxRunning: options.maxRunning,
      ...(options.maxQueues === undefined ? {} : { maxQueues: options.maxQueues }),
      defaultTimeout: options.defaultTimeout,
      defaultLimits: options.defaultLimits,
      maxLimits: options.maxLimits,
      keepJobs: options.keepJobs,
      keepFor: options.keepFor,
      resetStore: options.resetStore === true,
      ...(options.homesDir === undefined ? {} : { homesDir: resolve(ctx.cwd, options.homesDir) }),
      ...(options.ioDir === undefined
        ? {}
        : { ioDir: options.ioDir === '' ? '' : resolve(ctx.cwd, options.ioDir) }),
      ...(options.singleAccount ? { singleAccount: true } : {}),
      ...(options.adminRunAs === undefined ? {} : { adminRunAs: options.adminRunAs }),
      tlsCert: options.tlsCert === undefined ? undefined : resolve(ctx.cwd, options.tlsCert),
      tlsKey: options.tlsKey === undefined ? undefined : resolve(ctx.cwd, options.tlsKey),
      clientCa: options.clientCa === undefined ? undefined : resolve(ctx.cwd, options.clientCa),
      ...(options.insecureHttp === true ? { insecureHttp: true } : {}),
      ...(options.runWithoutToken === true ? { runWithoutToken: true } : {}),
      runCwd: resolve(ctx.cwd, options.runCwd ?? '.'),
      ...(options.defaultIsolation === undefined ? {} : { defaultIsolation: options.defaultIsolation }),
      ...(options.forceIsolation === true ? { forceIsolation: true } : {}),
      ...(options.tasks === undefined ? {} : { tasks: resolve(ctx.cwd, options.tasks) }),
      ...(options.metricsListen === undefined ? {} : { metricsListen: options.metricsListen }),
      ...(options.webhookAllow === undefined ? {} : { webhookAllow: options.webhookAllow }),
      ...(options.store === undefined ? {} : { store: options.store }),
      ...(options.storePool === undefined ? {} : { storePool: options.storePool }),
      ...(options.nodeId === undefined ? {} : { nodeId: options.nodeId }),
      ...(options.advertiseUrl === undefined ? {} : { advertiseUrl: options.advertiseUrl }),
      ...(options.nodeTimeout === undefined ? {} : { nodeTimeout: options.nodeTimeout }),
      ...(options.clusterSecretFile === undefined
        ? {}
        : { clusterSecretFile: resolve(ctx.cwd, options.clusterSecretFile) }),
      ...(options.clusterCa === undefined ? {} : { clusterCa: resolve(ctx.cwd, options.clusterCa) }),
      ...(json ? { logStream: ctx.stderr } : {}),
    }).catch((err: unknown) => {
      // A bad value of any flag above is a usage error (exit 2), like any bad option.
      const field = err instanceof ValidationError ? err.field : undefined;
      const flagFields = [
        'listen',
        'logLevel',
        'outputCap',
        'maxRunning',
        'maxQueues',
        'logFormat',
        'defaultTimeout',
        'defaultLimits',
        'maxLimits',
        'keepJobs',
        'keepFor',
        'homesDir',
        'ioDir',
        'insecureHttp',
        'runWithoutToken',
        'defaultIsolation',
        'metricsListen',
        'webhookAllow',
        'store',
        'storePool',
        'nodeId',
        'advertiseUrl',
        'nodeTimeout',
      ];
      if (field !== undefined && flagFields.includes(field.split('.')[0] ?? field)) {
        throw new UsageError((err as Error).message);
      }
      throw err;
    });
    const where = {
      url: server.url,
      socketPath: server.socketPath,
      dataDir: server.dataDir,
      adminTokenFile: server.adminTokenFile,
      caFile: server.caFile,
      metricsUrl: server.metricsUrl,
    };
    if (json) await printJson(ctx, where);
    else {
      await notice(
        ctx,
        `jobworker: listening on ${server.url}${server.socketPath ? ` and ${server.socketPath}` : ''}\n` +
          `jobworker: data in ${server.dataDir}; admin token in ${server.adminTokenFile}\n` +
          (server.caFile ? `jobworker: clients verify the server with ${server.caFile}\n` : ''),
      );
    }
    // SIGHUP reads the tasks file again; a bad one is logged and the definitions in force are kept.
    const reload = () => {
      server.reloadTasks().catch(() => undefined);
    };
    process.on('SIGHUP', reload);
    const signal = await stopped.promise;
    process.off('SIGHUP', reload);
    // A second signal while closing ends the process at once.
    const force = () => process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    process.once('SIGINT', force).once('SIGTERM', force);
    if (!json) await notice(ctx, `jobworker: ${signal}: closing; running jobs keep running\n`);
    await server.close();
  });
}

/** Whether a store URL carries a password (`postgres://user:secret@host/db`, or `?password=`). */
function storeUrlHasPassword(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.password !== '' || parsed.searchParams.has('password');
  } catch {
    // Not a URL: runServer names what is wrong with it.
    return false;
  }
}

/**
 * Writes one of serve's own lines to stderr, best effort: on a full disk it is lost, and the
 * server goes on (and closes on a signal) all the same.
 */
function notice(ctx: CliContext, text: string): Promise<void> {
  return writeTo(ctx.stderr, text).catch(() => undefined);
}

/** Listens from before the server starts, so a signal during startup still closes it once it is up. */
function waitForSignal(): { promise: Promise<NodeJS.Signals> } {
  const { promise, resolve } = Promise.withResolvers<NodeJS.Signals>();
  const on = (signal: NodeJS.Signals) => {
    process.off('SIGINT', on).off('SIGTERM', on);
    resolve(signal);
  };
  process.once('SIGINT', on).once('SIGTERM', on);
  return { promise };
}
