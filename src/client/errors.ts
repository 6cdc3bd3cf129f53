import { ApiError, ConnectionError, ProtocolError } from './wire-errors.ts';

/**
 * An error answer from the server, typed by its stable `code` (the catalogue of docs/errors.md:
 * `NOT_FOUND`, `VALIDATION_FAILED`, `ILLEGAL_TRANSITION`, ...). `field` names the input at fault
 * for a validation error.
 */
export class JobworkerApiError extends Error {
  override name = 'JobworkerApiError';
  /** The HTTP status (404, 409, ...). */
  readonly status: number;
  /** The error code; null only when the server (or a proxy in front) sent no JSON error. */
  readonly code: string | null;
  readonly field: string | null;
  constructor(
    status: number,
    message: string,
    code: string | null,
    field: string | null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** The server could not be reached, or the connection broke (refused, reset, TLS verification failed). */
export class JobworkerConnectionError extends Error {
  override name = 'JobworkerConnectionError';
}

/** The transport's errors as the library's own: callers see only the `Jobworker*` types. */
export function toClientError(error: unknown): unknown {
  if (error instanceof ApiError) {
    return new JobworkerApiError(error.status, error.message, error.code, error.field, { cause: error });
  }
  // A follower that gave up reconnecting throws a ConnectionError: the server stayed unreachable.
  if (error instanceof ConnectionError || error instanceof ProtocolError) {
    return new JobworkerConnectionError(error.message, { cause: error });
  }
  return error;
}
