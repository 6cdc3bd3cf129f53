import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { ApiClient } from './api-client.ts';
import type { CliEnvironment } from './cli-env.ts';
import { resolveConnection } from './connection.ts';
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
}

/** Options every command accepts (also before the command name). */
export interface CommonOptions {
  server?: string;
  json?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
}

/** `clientCert: false` leaves out `--cert`/`--key` (for a command whose own `--cert` means another file). */
export function addCommonOptions(command: Command, { clientCert = true } = {}): Command {
  command
    .option('--server <url>', 'the server (default: $JOBWORKER_URL, else https://127.0.0.1:8080)')
    .option(
      '--ca <file>',
      "CA that verifies the server (default: $JOBWORKER_CA, else the local server's <data-dir>/tls/ca.pem)",
    )
    .option('--json', 'print one JSON document on stdout, for scripts');
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
  return new ApiClient(await resolveConnection(options.server, ctx.env, { ...options, cwd: ctx.cwd }));
}

export function printJson(ctx: CliContext, value: unknown): Promise<void> {
  return writeTo(ctx.stdout, `${JSON.stringify(value, null, 2)}\n`);
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
