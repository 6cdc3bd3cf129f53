import { RateLimitedError } from '../../auth/auth-errors.ts';
import { redactTokens } from '../../auth/token.ts';
import { DuplicateJobError, type ErrorCode, JobworkerError, ValidationError } from '../../core/errors.ts';
import { AlreadyFinishedError } from '../../service/service-errors.ts';
import { type JobJson, jobToJson } from './job-json.ts';
import { MethodNotAllowedError } from './method-not-allowed.ts';
import { type RequestPart, type SchemaError, schemaValidationError } from './request-errors.ts';

/**
 * The one place where error codes become HTTP statuses. docs/errors.md shows the same table and
 * a test keeps the two in sync.
 */
export const HTTP_STATUS = {
  VALIDATION_FAILED: 400,
  COMMAND_NOT_FOUND: 400,
  BAD_CURSOR: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  ACCOUNT_UNAVAILABLE: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  DUPLICATE: 409,
  ILLEGAL_TRANSITION: 409,
  ALREADY_FINISHED: 409,
  NOT_FINISHED: 409,
  IN_USE: 409,
  AMBIGUOUS: 409,
  ALREADY_EXISTS: 409,
  LAST_ADMIN: 409,
  JOB_FAILED: 422,
  PAYLOAD_TOO_LARGE: 413,
  CAPACITY_EXHAUSTED: 429,
  QUEUE_FULL: 429,
  RATE_LIMITED: 429,
  SPAWN_FAILED: 500,
  INSUFFICIENT_STORAGE: 507,
  NODE_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const satisfies Record<ErrorCode, number>;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
  /** On ALREADY_FINISHED: the job, unchanged; on DUPLICATE: the job with that dedupeKey. */
  job?: JobJson;
}

export interface ErrorResponse {
  readonly status: number;
  readonly body: ErrorBody;
  /** True for errors nobody raised on purpose: log them with their stack (never sent). */
  readonly unexpected: boolean;
  /** Headers the answer carries besides its body (`Retry-After`, `WWW-Authenticate`). */
  readonly headers: Readonly<Record<string, string>>;
}

/** What the mapping may need of the request to name a field (the data that failed a schema). */
export interface RequestData {
  readonly body?: unknown;
  readonly query?: unknown;
  readonly params?: unknown;
  readonly headers?: unknown;
}

/** Fastify's own request errors, by code: all are the client's fault. */
const FASTIFY_ERRORS: Record<string, (err: FastifyLikeError) => JobworkerError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () =>
    new JobworkerError('PAYLOAD_TOO_LARGE', 'The request body is larger than the 1 MiB allowed'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () =>
    new ValidationError('Content-Type', 'Expected a JSON body with `Content-Type: application/json`'),
};

interface FastifyLikeError {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly message?: unknown;
  readonly validation?: readonly SchemaError[];
  readonly validationContext?: RequestPart;
}

/** Maps anything thrown while answering a request to a status and a body without internals. */
export function toErrorResponse(err: unknown, request: RequestData = {}): ErrorResponse {
  const known = knownError(err, request);
  if (known) {
    const error: ErrorBody['error'] = { code: known.code, message: redactTokens(known.message) };
    const field = (known as { field?: unknown }).field;
    if (typeof field === 'string') error.field = field;
    const body: ErrorBody = { error };
    if (known instanceof AlreadyFinishedError || known instanceof DuplicateJobError) {
      body.job = jobToJson(known.job);
    }
    const headers: Record<string, string> = {};
    if (known.code === 'UNAUTHENTICATED') headers['WWW-Authenticate'] = 'Bearer';
    if (known instanceof RateLimitedError) headers['Retry-After'] = String(known.retryAfterSeconds);
    if (known instanceof MethodNotAllowedError) headers.Allow = known.allowed.join(', ');
    return { status: HTTP_STATUS[known.code], body, unexpected: known.code === 'INTERNAL', headers };
  }
  return {
    status: 500,
    body: { error: { code: 'INTERNAL', message: 'Internal server error; the server log has the details' } },
    unexpected: true,
    headers: {},
  };
}

function knownError(err: unknown, request: RequestData): JobworkerError | undefined {
  if (err instanceof JobworkerError) return err;
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as FastifyLikeError;
  if (Array.isArray(e.validation) && e.validationContext) {
    const part = e.validationContext;
    const data = {
      body: request.body,
      querystring: request.query,
      params: request.params,
      headers: request.headers,
    }[part];
    return schemaValidationError(e.validation, part, data);
  }
  const byCode = typeof e.code === 'string' ? FASTIFY_ERRORS[e.code] : undefined;
  if (byCode) return byCode(e);
  // Any other 4xx Fastify raises (a malformed URL, ...) is bad input; its message is safe to show.
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return new JobworkerError('PAYLOAD_TOO_LARGE', String(e.message));
  if (status >= 400 && status < 500) return new ValidationError('request', String(e.message));
  return undefined;
}
