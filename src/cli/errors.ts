/** Exit statuses of the CLI besides a followed job's own exit code. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/**
 * True for an error of one of these names. `instanceof` goes by name for the CLI's errors: the
 * bundled CLI (dist/jobworker.cjs) loads `serve` from dist/src/, which has its own copy of this
 * module, and an error of that copy must exit as one of the bundle's would.
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
    return named(value, ['CliError', 'ConnectionError', 'ApiError']);
  }
}

/** The server could not be reached (refused, reset, DNS): a follower may retry it. */
export class ConnectionError extends CliError {
  override name = 'ConnectionError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, ['ConnectionError']);
  }
}

/** An error answer from the server: `{"error": {"code", "message", "field"?}}`. */
export class ApiError extends CliError {
  override name = 'ApiError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, ['ApiError']);
  }
  readonly status: number;
  readonly code: string | null;
  readonly field: string | null;
  constructor(status: number, message: string, code: string | null = null, field: string | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** "No job with id x (NOT_FOUND)", "Expected ... (VALIDATION_FAILED, field timeoutMs)". */
  describe(): string {
    const context = [this.code, this.field === null ? null : `field ${this.field}`].filter(Boolean);
    return context.length === 0 ? this.message : `${this.message} (${context.join(', ')})`;
  }
}
