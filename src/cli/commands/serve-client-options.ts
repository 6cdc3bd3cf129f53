import { type Command, Option } from 'commander';
import type { CommonOptions } from '../cli-context.ts';
import { UsageError } from '../errors.ts';

/**
 * The clients' options (addCommonOptions in cli-context.ts) that mean nothing to `serve`, and what
 * serve takes instead. Taken and refused rather than left unknown: `serve --address 0.0.0.0:9443`
 * must say where serve's address goes, not only that the option is unknown, and one given before
 * the command (`jobworker --debug serve`) must not be ignored.
 */
const INSTEAD = {
  server: [
    '--server <url>',
    'serve listens at --listen HOST:PORT (other nodes reach it at --advertise-url URL)',
  ],
  address: ['--address <host:port>', 'serve listens at --listen HOST:PORT'],
  debug: ['--debug', 'serve logs more with --log-level debug'],
  ca: ['--ca <file>', 'the CA that client certificates must chain to is --client-ca FILE'],
  cert: ['--cert <file>', "serve's own certificate is --tls-cert FILE with --tls-key FILE"],
  key: ['--key <file>', "serve's own certificate is --tls-cert FILE with --tls-key FILE"],
} as const satisfies Record<Exclude<keyof CommonOptions, 'json'>, readonly [string, string]>;

/** Adds the clients' options to `serve`, out of its help, so that refuseClientOptions names them. */
export function addRefusedClientOptions(command: Command): Command {
  for (const [flags] of Object.values(INSTEAD)) command.addOption(new Option(flags).hideHelp());
  return command;
}

/** Throws a usage error for the first client option given, before or after `serve`. */
export function refuseClientOptions(options: CommonOptions): void {
  for (const [key, [flags, instead]] of Object.entries(INSTEAD)) {
    if (options[key as keyof typeof INSTEAD] === undefined) continue;
    const flag = flags.split(' ')[0];
    throw new UsageError(`${flag} is a client option, not one of serve's: ${instead}`);
  }
}

/** The line of `serve --help` that says so. */
export const CLIENT_OPTIONS_HELP =
  "The clients' --server, --address, --ca, --cert, --key and --debug are not serve's: it listens at " +
  '--listen, serves --tls-cert/--tls-key, checks client certificates against --client-ca and logs ' +
  'more with --log-level debug.';
