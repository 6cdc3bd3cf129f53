/** Exit statuses of the CLI besides a followed job's own exit code. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Bad command-line input: exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure the user can read in one line: exits 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/** The server could not be reached (refused, reset, DNS): a follower may retry it. */
export class ConnectionError extends CliError {
  override name = 'ConnectionError';
}

/** An error answer from the server: `{"error": {"code", "message", "field"?}}`. */
export class ApiError extends CliError {
  override name = 'ApiError';
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
