import { JobworkerError } from '../core/errors.ts';

/** No credentials, unknown credentials, or credentials sent where they are never accepted. */
export class UnauthenticatedError extends JobworkerError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}
