/**
 * Errors of the REST transport (src/client): what the CLI and the library's typed errors are
 * made from. `instanceof` goes by name, as for the CLI's errors (src/cli/errors.ts): the bundled
 * CLI and dist/src/ each have their own copy of this module.
 */
function named(value: unknown, name: string): boolean {
  return value instanceof Error && value.name === name;
}

/** The server could not be reached (refused, reset, DNS): a follower may retry it. */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, 'ConnectionError');
  }
}

/** An error answer from the server: `{"error": {"code", "message", "field"?}}`. */
export class ApiError extends Error {
  override name = 'ApiError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, 'ApiError');
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

/** The server answered something this client cannot read (a malformed frame, a wrong type). */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return named(value, 'ProtocolError');
  }
}
