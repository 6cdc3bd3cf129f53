import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { ApiClient } from '../client/api-client.ts';
import type { Clock } from '../core/clock.ts';
import type { CliEnvironment } from './cli-env.ts';
import { addressUrl, type Connection, resolveConnection } from './connection.ts';
import { UsageError } from './errors.ts';
import { jsonText } from './json-text.ts';
import { writeTo } from './output-writer.ts';
import { Style } from './style.ts';

export type Output = Writable & { isTTY?: boolean; columns?: number };

/** What every command runs with: its environment, its output streams and the exit status to end with. */
export interface CliContext {
  readonly env: CliEnvironment;
  readonly stdout: Output;
  readonly stderr: Output;
  readonly cwd: string;
  /** The status the process exits with once the command is done. */
  exitCode: number;
  /**
   * True when the CLI is the whole process (`jobworker` itself, not `runCli` inside another
   * program): it may then change process-wide settings, such as the CAs TLS trusts by default.
   */
  readonly ownsProcess?: boolean;
  /**
   * The clock of the CLI's own pauses (how often `drain` asks for the running count); the system
   * clock when absent. Tests running the CLI in process move a manual one.
   */
  readonly clock?: Clock;
}

/** Options every command accepts (also before the command name). */
export interface CommonOptions {
  server?: string;
  json?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  /** The Job Worker design's `--address host:port`: https:// to that address. */
  address?: string;
  /** The Job Worker design's `--debug`: where the CLI connects and each request, on stderr. */
  debug?: boolean;
}

/** `clientCert: false` leaves out `--cert`/`--key` (for a command whose own `--cert` means another file). */
export function addCommonOptions(command: Command, { clientCert = true } = {}): Command {
  command
    .option('--server <url>', 'the server (default: $JOBWORKER_URL, else https://127.0.0.1:8080)')
    .option(
      '--ca <file>',
      "CA that verifies the server (default: $JOBWORKER_CA, else the local server's <data-dir>/tls/ca.pem)",
    )
    .option('--address <host:port>', 'the server as host:port, over TLS (like --server https://host:port)')
    .option('--json', 'print one JSON document on stdout, for scripts')
    .option('--debug', 'print where the CLI connects and each request it makes, on stderr');
  if (!clientCert) return command;
  return command
    .option(
      '--cert <file>',
      'client certificate to authenticate with (default: $JOBWORKER_CERT, else ./cert/client-cert.pem)',
    )
    .option('--key <file>', 'key of --cert (default: $JOBWORKER_KEY, else ./cert/client-key.pem)');
}

/** The command's own options merged over those given before the command name. */
export function commonOptions(command: Command): CommonOptions {
  return command.optsWithGlobals<CommonOptions>();
}

export async function connect(ctx: CliContext, options: CommonOptions): Promise<ApiClient> {
  if (options.address !== undefined && options.server !== undefined) {
    throw new UsageError('Give --server or --address, not both');
  }
  const server = options.address !== undefined ? addressUrl(options.address) : options.server;
  const resolved = await resolveConnection(server, ctx.env, { ...options, cwd: ctx.cwd });
  const connection = ctx.ownsProcess === true ? trustCaByDefault(resolved) : resolved;
  // A command makes a request or two and exits: each on a connection of its own, without node:http.
  if (options.debug !== true) return new ApiClient(connection, { oneShot: true });
  const debug = (line: string) => ctx.stderr.write(`jobworker: debug: ${line}\n`);
  debug(
    `server ${connection.socketPath === null ? connection.baseUrl.origin : `${connection.baseUrl.protocol}// over ${connection.socketPath}`}; ` +
      `${connection.tls.ownSocket === true ? 'server not checked by a CA (its socket is in the data directory)' : `CA ${connection.tls.caFiles.join(', ') || "the system's"}`}; ` +
      `client certificate ${connection.tls.certFile ?? 'none'}; token ${connection.tokenSource === 'none' ? 'none' : `from ${connection.tokenSource}`}`,
  );
  return new ApiClient(connection, { debug, oneShot: true });
}

/**
 * The server's CA as the process's only trusted CAs, instead of a `ca` option on each request: with
 * the option, Node builds a store of its ~140 bundled root CAs and adds the option's to it (~3.5 ms
 * of parsing on every https command); the CLI trusts nothing else anyway. Process-wide, so only
 * when the CLI is the process (`ownsProcess`), never in the client library or a test's `runCli`.
 */
function trustCaByDefault(connection: Connection): Connection {
  const ca = connection.tls.ca;
  if (ca === undefined || connection.baseUrl.protocol !== 'https:') return connection;
  process.getBuiltinModule('node:tls').setDefaultCACertificates([...ca]);
  return { ...connection, tls: { ...connection.tls, ca: undefined } };
}

export function printJson(ctx: CliContext, value: unknown): Promise<void> {
  return writeTo(ctx.stdout, `${jsonText(value, 2)}\n`);
}

export function stdoutStyle(ctx: CliContext): Style {
  return Style.for(ctx.stdout, ctx.env.noColor);
}

/** A human note on stderr, shown only on a terminal so that redirected stderr keeps the job's bytes exact. */
export function note(ctx: CliContext, text: string): void {
  if (ctx.stderr.isTTY === true)
    ctx.stderr.write(`${Style.for(ctx.stderr, ctx.env.noColor).dim(`jobworker: ${text}`)}\n`);
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
