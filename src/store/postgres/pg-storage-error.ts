import { InsufficientStorageError, JobworkerError } from '../../core/errors.ts';
import { redactPostgresUrl } from './open-postgres.ts';

/**
 * The job database could not be reached (refused, timed out, dropped mid-query, shut down), or
 * refused us (no such database, authentication failed). The
 * message names the database with its password redacted; `cause` is the driver's error. Whether
 * the request was done is unknown only when the connection dropped during a commit.
 */
export class PostgresUnavailableError extends JobworkerError {
  static override readonly errorName = 'PostgresUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('STORE_UNAVAILABLE', message, options);
  }
}

/** What `pg` puts on a server error: its SQLSTATE and, for a constraint, the constraint's name. */
export interface PgErrorFields {
  readonly code?: unknown;
  readonly constraint?: unknown;
  readonly message?: unknown;
}

/** Node's codes for a connection that could not be made or was cut. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
]);

/** Whether `err` is PostgreSQL's unique_violation on the named constraint (or index). */
export function isUniqueViolation(err: unknown, constraint: string): boolean {
  const { code, constraint: name } = (err ?? {}) as PgErrorFields;
  return code === '23505' && name === constraint;
}

/**
 * `err` as the store reports it: a full disk (SQLSTATE 53100, or 53000 from the server) becomes an
 * `InsufficientStorageError` (a client gets 507 with the real cause; PostgreSQL rolled the
 * transaction back, so nothing of the write is left); a connection that could not be made or was
 * lost, or a lock waited for past the lock timeout, becomes a `PostgresUnavailableError`. Both name the database with the password redacted.
 * A `JobworkerError` and any other error are returned as they are.
 */
export function pgStoreError(err: unknown, url: string): unknown {
  // Already the store's own words: a refusal made on purpose (not found, last admin) or a mapped error.
  if (err instanceof JobworkerError) return err;
  const { code, message } = (err ?? {}) as PgErrorFields;
  const text = typeof message === 'string' ? message : String(err);
  const where = redactPostgresUrl(url);
  if (code === '53100' || code === '53000') {
    return new InsufficientStorageError(
      `Cannot write to the job database ${where}: ${text} (PostgreSQL ${code}); free space on the database server and try again`,
      { cause: err },
    );
  }
  const lost =
    (typeof code === 'string' &&
      (code.startsWith('08') ||
        code === '57P01' ||
        code === '57P02' ||
        code === '57P03' ||
        // The session ended for idling in a transaction (`idle_in_transaction_session_timeout`).
        code === '25P03')) ||
    (typeof code === 'string' && NETWORK_CODES.has(code)) ||
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
      text,
    );
  // The server answered but will not let us in: no such database, or bad credentials.
  if (typeof code === 'string' && (code === '3D000' || code.startsWith('28'))) {
    return new PostgresUnavailableError(
      `Cannot open the job database ${where}: ${text} (PostgreSQL ${code})`,
      {
        cause: err,
      },
    );
  }
  // `lock_timeout`: a row this needed was held for longer (docs/cluster.md, "Frozen nodes").
  if (code === '55P03') {
    return new PostgresUnavailableError(
      `The job database ${where} is busy: ${text} (PostgreSQL 55P03); try again`,
      { cause: err },
    );
  }
  if (lost) {
    return new PostgresUnavailableError(`The job database ${where} is unreachable: ${text}`, { cause: err });
  }
  return err;
}
