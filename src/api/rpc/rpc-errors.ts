import { Code, ConnectError } from '@connectrpc/connect';
import { RateLimitedError } from '../../auth/auth-errors.ts';
import { redactTokens } from '../../auth/token.ts';
import { DuplicateJobError, type ErrorCode, JobworkerError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { AlreadyFinishedError } from '../../service/service-errors.ts';
import { ErrorDetailSchema } from './gen/jobworker/v1/errors_pb.ts';
import { JobSchema } from './gen/jobworker/v1/job_pb.ts';
import { fieldName, jobToProto } from './rpc-mapping.ts';

/** A detail as ConnectError's constructor takes it (a type the package does not export). */
type OutgoingDetail = NonNullable<ConstructorParameters<typeof ConnectError>[3]>[number];

/**
 * The one place where error codes become gRPC status codes. docs/errors.md shows the same table
 * (its gRPC column) and a test keeps the two in sync.
 */
export const GRPC_STATUS = {
  VALIDATION_FAILED: Code.InvalidArgument,
  COMMAND_NOT_FOUND: Code.InvalidArgument,
  BAD_CURSOR: Code.OutOfRange,
  UNAUTHENTICATED: Code.Unauthenticated,
  FORBIDDEN: Code.PermissionDenied,
  ACCOUNT_UNAVAILABLE: Code.FailedPrecondition,
  NOT_FOUND: Code.NotFound,
  // REST only (a path with another method); an RPC path answers only POST.
  METHOD_NOT_ALLOWED: Code.Unimplemented,
  DUPLICATE: Code.AlreadyExists,
  ILLEGAL_TRANSITION: Code.FailedPrecondition,
  ALREADY_FINISHED: Code.FailedPrecondition,
  NOT_FINISHED: Code.FailedPrecondition,
  JOB_FAILED: Code.FailedPrecondition,
  IN_USE: Code.FailedPrecondition,
  AMBIGUOUS: Code.InvalidArgument,
  ALREADY_EXISTS: Code.AlreadyExists,
  LAST_ADMIN: Code.FailedPrecondition,
  PAYLOAD_TOO_LARGE: Code.ResourceExhausted,
  CAPACITY_EXHAUSTED: Code.ResourceExhausted,
  QUEUE_FULL: Code.ResourceExhausted,
  RATE_LIMITED: Code.ResourceExhausted,
  SPAWN_FAILED: Code.Internal,
  INSUFFICIENT_STORAGE: Code.ResourceExhausted,
  NODE_UNAVAILABLE: Code.Unavailable,
  STORE_UNAVAILABLE: Code.Unavailable,
  INTERNAL: Code.Internal,
} as const satisfies Record<ErrorCode, Code>;

/**
 * Anything thrown by a handler as the status the client gets. A jobworker error keeps its message
 * and carries an `ErrorDetail` (our code, the field, the retry delay) in the status details, and
 * the job where REST's error body carries one (ALREADY_FINISHED, DUPLICATE). A ConnectError raised
 * by Connect itself (a malformed message, an unknown method) passes as it is. Anything else is
 * INTERNAL with no internals, logged with its stack.
 */
export function toConnectError(err: unknown, logger: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (!(err instanceof JobworkerError)) {
    logger.error({ err }, 'rpc failed');
    return withDetail(
      new JobworkerError('INTERNAL', 'Internal server error; the server log has the details'),
    );
  }
  if (err.code === 'INTERNAL') logger.error({ err }, 'rpc failed');
  return withDetail(err);
}

function withDetail(err: JobworkerError): ConnectError {
  const field = (err as { field?: unknown }).field;
  const details: OutgoingDetail[] = [
    {
      desc: ErrorDetailSchema,
      value: {
        code: err.code,
        field: typeof field === 'string' ? fieldName(field) : '',
        retryAfterSeconds: err instanceof RateLimitedError ? err.retryAfterSeconds : 0,
      },
    },
  ];
  if (err instanceof AlreadyFinishedError || err instanceof DuplicateJobError) {
    details.push({ desc: JobSchema, value: jobToProto(err.job) });
  }
  const metadata: Record<string, string> = {};
  if (err instanceof RateLimitedError) metadata['retry-after'] = String(err.retryAfterSeconds);
  return new ConnectError(redactTokens(err.message), GRPC_STATUS[err.code], metadata, details, err);
}
