/** Exit statuses of the CLI besides a followed job's own exit code. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

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
    return named(value, ['CliError', 'ConnectionError', 'ApiError', 'ProtocolError']);
  }
}

export { ApiError, ConnectionError, ProtocolError } from '../client/wire-errors.ts';
