import { ApiError, ConnectionError, ProtocolError } from '../client/wire-errors.ts';

/** Exit statuses of the CLI besides a followed job's own exit code. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** A follow whose reader went away: 128 + SIGPIPE, as a shell reports a process SIGPIPE ended. */
  closedPipe: 141,
} as const;

/**
 * True for an error of one of these names. `instanceof` goes by name for the CLI's errors: the
 * bundled CLI (dist/jobworker-cli.cjs) loads `serve` from a bundle of its own, which has its own
 * copy of this module, and an error of that copy must exit as one of the bundle's would.
 */
function named(value: unknown, names: readonly string[]): boolean {
  return value instanceof Error && names.includes(value.name);
}

/** Bad command-line input: exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, ['UsageError']);
  }
}

/** A failure the user can read in one line: exits 1. */
export class CliError extends Error {
  override name = 'CliError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    // The client's errors (src/client/wire-errors.ts) read as the CLI's: one line, exit 1.
    return named(value, ['CliError', 'ConnectionError', 'ApiError', 'ProtocolError', 'FollowError']);
  }
}

/** What a follow that ends before its job says of the job, with the commands that reach it. */
export function keepsRunning(jobId: string): string {
  return `job ${jobId} keeps running (jobworker logs -f ${jobId}, jobworker stop ${jobId})`;
}

/**
 * A follow (`start -f`, `logs -f`) that failed while its job lives on (the server away longer
 * than --reconnect-for, a proxy's cut): `cause` says why, and the message and the `--json` error
 * (`jobId`) name the job, which a script could not know otherwise and must not start again.
 */
export class FollowError extends Error {
  override name = 'FollowError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, ['FollowError']);
  }
  readonly jobId: string;
  constructor(cause: Error, jobId: string) {
    const why = cause instanceof ApiError ? cause.describe() : cause.message;
    super(`${why.split('\n')[0]}; ${keepsRunning(jobId)}`, { cause });
    this.jobId = jobId;
  }
}

export { ApiError, ConnectionError, ProtocolError };
