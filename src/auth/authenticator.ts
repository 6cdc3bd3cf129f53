import { UnauthenticatedError } from './auth-errors.ts';
import type { Principal } from './principal.ts';

/** Where tokens are looked up: `TokenStore` fits. */
export interface TokenLookup {
  authenticate(token: string): Principal | undefined;
  /** The principal of a known, enabled user, or undefined (a client certificate named it). */
  principalOfUser(name: string): Principal | undefined;
}

const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

/** Turns an `Authorization` header into the principal it stands for, or throws `UnauthenticatedError`. */
export class Authenticator {
  readonly #tokens: TokenLookup;

  constructor(tokens: TokenLookup) {
    this.#tokens = tokens;
  }

  authenticate(authorization: string | undefined): Principal {
    if (authorization === undefined || authorization === '') {
      throw new UnauthenticatedError('Missing credentials: send the header `Authorization: Bearer <token>`');
    }
    const token = BEARER.exec(authorization)?.[1];
    if (token === undefined) {
      throw new UnauthenticatedError(
        'Expected the header `Authorization: Bearer <token>`, got another scheme',
      );
    }
    const principal = this.#tokens.authenticate(token);
    if (!principal) throw new UnauthenticatedError('Invalid token');
    return principal;
  }

  /** The principal of the user a verified client certificate names; an unknown or disabled user is refused. */
  authenticateUser(name: string): Principal {
    const principal = this.#tokens.principalOfUser(name);
    if (!principal) {
      throw new UnauthenticatedError(
        `The client certificate names user ${JSON.stringify(name)}, who is unknown or disabled`,
      );
    }
    return principal;
  }
}
