import { JobworkerError } from '../core/errors.ts';

/** No credentials, unknown credentials, or credentials sent where they are never accepted. */
export class UnauthenticatedError extends JobworkerError {
  static override readonly errorName = 'UnauthenticatedError';
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

/** Too many failed authentications from one address: refused without looking at the credentials. */
export class RateLimitedError extends JobworkerError {
  static override readonly errorName = 'RateLimitedError';
  /** Whole seconds until the address may try again (the `Retry-After` header). */
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super(
      'RATE_LIMITED',
      `Too many failed authentications from this address; try again in ${retryAfterSeconds} s`,
    );
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
