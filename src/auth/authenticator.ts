import type { AuditSink } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { addressBlock } from './address-block.ts';
import { RateLimitedError, UnauthenticatedError } from './auth-errors.ts';
import { FailedAuthLimiter, type FailedAuthLimits } from './failed-auth-limiter.ts';
import { type Caller, type CallOrigin, type Principal, tokenExpired } from './principal.ts';
import { latestIssueOf } from './tls/certificate-authority.ts';
import type { TokenVerdict } from './user-directory.ts';

/** A token that authenticated someone: `TokenVerdict` when it is ok. */
type Verified = Extract<TokenVerdict, { ok: true }>;

/** Where tokens and users are looked up: `UserDirectory` fits. */
export interface TokenLookup {
  /** What a token stands for, or why it stands for nobody. */
  verify(token: string): TokenVerdict;
  /** A known, enabled user's principal (a client certificate names one), else undefined. */
  principalOfUser(name: string): Principal | undefined;
  /** A known user, with when it was created (by the clock of the node that added it). */
  user(name: string): { readonly createdAt: Date } | undefined;
  /** How many times the user itself lost power (`UserDirectory.revision`); absent: never told. */
  revision?(user: string): number;
  /** Whether what authorized a caller is gone since (`UserDirectory.isStale`); absent: never. */
  isStale?(caller: Pick<Caller, 'user' | 'revision' | 'tokenId'>): boolean;
}

export interface AuthenticatorOptions {
  /** Where failed authentications are recorded. */
  readonly audit?: AuditSink;
  readonly clock?: Clock;
  /**
   * Failed authentications are logged here at `warn`, without the credentials presented; a
   * request with none at `debug`.
   */
  readonly logger?: Logger;
  /** The per-source limit of failed authentications. */
  readonly limits?: FailedAuthLimits;
  /**
   * Client certificates are the server's own CA's (no `--client-ca`): one issued before its user
   * was created, for an earlier user of that name, is refused. Another CA's certificates say
   * nothing this server can rely on about when they were issued.
   */
  readonly ownClientCa?: boolean;
}

/** What a verified client certificate says of whoever presents it. */
export interface CertificateHolder {
  /** The user it names. */
  readonly user: string;
  /** The start of its validity (its CA's issue time, less the CA's backdating). */
  readonly notBefore: Date;
}

const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

const IN_PROCESS: CallOrigin = { source: null, transport: 'internal' };

/**
 * Turns credentials into the principal they stand for, or throws `UnauthenticatedError`, for
 * every adapter. Each failure is counted per source address (`RATE_LIMITED` once a source failed
 * too often: docs/security.md), recorded in the audit trail and logged, never with the secret. A
 * request with no credentials at all is refused without any of that: it guessed nothing.
 */
export class Authenticator {
  readonly #tokens: TokenLookup;
  readonly #audit: AuditSink | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #limiter: FailedAuthLimiter;
  readonly #ownClientCa: boolean;

  constructor(tokens: TokenLookup, options: AuthenticatorOptions = {}) {
    this.#tokens = tokens;
    this.#audit = options.audit;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#limiter = new FailedAuthLimiter(this.#clock, options.limits);
    this.#ownClientCa = options.ownClientCa === true;
  }

  /** The principal of an `Authorization` header, for a call that came from `origin`. */
  authenticate(authorization: string | undefined, origin: CallOrigin = IN_PROCESS): Principal {
    if (authorization === undefined || authorization === '') {
      // No credential is no attempt: nothing was guessed, so it is neither counted against the
      // address nor audited. Every visit of the dashboard begins so (it asks whether the browser's
      // client certificate signs it in); counted, twenty tabs opened in a minute would have turned
      // the next revoked token's 401 into a 429, and filled the audit trail with `auth:fail`.
      this.#logger.debug({ source: origin.source, transport: origin.transport }, 'no credentials');
      throw new UnauthenticatedError('Missing credentials: send the header `Authorization: Bearer <token>`');
    }
    return this.#bearer(authorization, origin).principal;
  }

  /** The token of an `Authorization: Bearer` header, verified (`authenticate`). */
  #bearer(authorization: string, origin: CallOrigin): Verified {
    const token = BEARER.exec(authorization)?.[1];
    if (token === undefined) {
      throw this.refuse(
        origin,
        'not-bearer',
        'Expected the header `Authorization: Bearer <token>`, got another scheme',
      );
    }
    return this.#verify(token, origin);
  }

  #verify(token: string, origin: CallOrigin): Verified {
    const verdict = this.#tokens.verify(token);
    if (!verdict.ok) {
      throw this.refuse(origin, verdict.reason, 'Invalid token', verdict.tokenId, verdict.user);
    }
    return verdict;
  }

  /**
   * The caller of a bare token, as adapters hand it to the service (`callerOf`): for the one route
   * that takes it in its body (the workerctl design's `POST /api`); every other route takes it
   * from the `Authorization` header only.
   */
  authenticateTokenCall(token: string, origin: CallOrigin): Caller {
    const { principal, tokenId, expiresAt } = this.#verify(token, origin);
    return this.callerOf(principal, origin, tokenId, expiresAt);
  }

  /**
   * Counts, records and logs a failed authentication, and returns the error to throw. The audit
   * entry names the token (by id) and its user when known; the log line also says why (`unknown`,
   * `expired`, `revoked`, ...); the client gets `message` only. Adapters call it for credentials they check themselves (a certificate).
   */
  refuse(
    origin: CallOrigin,
    reason: string,
    message: string,
    tokenId?: string,
    user?: string,
  ): UnauthenticatedError | RateLimitedError {
    // Only failures are limited, and only they are answered 429 once a source has failed too
    // often: a good credential always passes. Loopback is one source for every local user and
    // every job, so a lockout of the whole address would let one job shut every local client out.
    // Past the limit the failures are counted but no longer audited or logged one by one (a flood
    // stays out of the trail).
    const key = sourceKey(origin);
    const wait = this.#limiter.retryAfter(key);
    this.#limiter.fail(key);
    if (wait > 0) return new RateLimitedError(wait);
    this.#audit?.record({
      at: this.#clock.now(),
      user: user ?? null,
      role: null,
      source: origin.source,
      transport: origin.transport,
      action: 'auth:fail',
      target: tokenId ?? null,
      result: 'UNAUTHENTICATED',
    });
    this.#logger.warn(
      {
        source: origin.source,
        transport: origin.transport,
        reason,
        ...(tokenId ? { tokenId } : {}),
        ...(user ? { user } : {}),
      },
      'authentication failed',
    );
    return new UnauthenticatedError(message);
  }

  /**
   * The caller of one call, whatever its adapter: the `Authorization` header (or metadata) when
   * sent, else the user a verified client certificate names (`certificateHolder`, undefined
   * without one), with where the call came from. A token, when sent, wins.
   */
  authenticateCall(
    authorization: string | undefined,
    certificateHolder: () => CertificateHolder | undefined,
    origin: CallOrigin,
  ): Caller {
    const holder = authorization === undefined ? certificateHolder() : undefined;
    if (holder !== undefined) return this.callerOf(this.authenticateUser(holder, origin), origin);
    // No credential at all: `authenticate` says so without counting it as an attempt.
    if (authorization === undefined || authorization === '') {
      return this.callerOf(this.authenticate(authorization, origin), origin);
    }
    const { principal, tokenId, expiresAt } = this.#bearer(authorization, origin);
    return this.callerOf(principal, origin, tokenId, expiresAt);
  }

  /**
   * Why `caller` may no longer act, if it may not: its token `expired` since it was authenticated,
   * or what authorized it was `revoked` (the token, or its user disabled, removed or demoted). A
   * request whose body arrived after that must not act on it.
   */
  staleness(caller: Caller): 'expired' | 'revoked' | undefined {
    if (tokenExpired(caller, this.#clock.now().getTime())) return 'expired';
    return this.#tokens.isStale?.(caller) === true ? 'revoked' : undefined;
  }

  /**
   * The caller of an authenticated principal, as adapters hand it to the service: with where it
   * came from, the token it came with (and when that expires), and the user's credentials
   * revision now (`Caller.revision`), taken in the same turn as the check of its credentials.
   */
  callerOf(
    principal: Principal,
    origin: CallOrigin & Partial<Pick<Caller, 'via'>>,
    tokenId?: string,
    tokenExpiresAt?: number | null,
  ): Caller {
    const revision = this.#tokens.revision?.(principal.user);
    return Object.freeze({
      ...principal,
      ...origin,
      ...(revision === undefined ? {} : { revision }),
      ...(tokenId === undefined ? {} : { tokenId }),
      ...(tokenExpiresAt === undefined || tokenExpiresAt === null ? {} : { tokenExpiresAt }),
    });
  }

  /**
   * `name`'s principal as this server's directory has it now: a known, enabled user, else
   * undefined. No authentication (nothing is counted or audited): for a caller another party
   * vouched for, as a node of a cluster forwarding its client's call.
   */
  knownUser(name: string): Principal | undefined {
    return this.#tokens.principalOfUser(name);
  }

  /**
   * The principal of the user a verified client certificate names; an unknown or disabled user is
   * refused like a bad token (counted, audited, logged). So is, with certificates of the server's
   * own CA (`ownClientCa`), a user created after the certificate was issued: it was issued for an
   * earlier user of that name, removed since (on this node its removal revoked it, but another
   * node of a cluster, whose CA issued it, keeps it valid; so does a removal whose revocation never
   * ran). The issue is known to the second (`latestIssueOf`), by the clock of the node that issued
   * it, the creation by the clock of the node that added the user.
   */
  authenticateUser(holder: CertificateHolder, origin: CallOrigin): Principal {
    const name = holder.user;
    const principal = this.#tokens.principalOfUser(name);
    if (!principal) {
      throw this.refuse(
        origin,
        'certificate-user-unknown-or-disabled',
        `The client certificate names user ${JSON.stringify(name)}, who is unknown or disabled`,
        undefined,
        name,
      );
    }
    const createdAt = this.#tokens.user(name)?.createdAt.getTime();
    if (this.#ownClientCa && createdAt !== undefined && latestIssueOf(holder.notBefore) < createdAt) {
      throw this.refuse(
        origin,
        'certificate-older-than-user',
        `The client certificate names user ${JSON.stringify(name)}, but was issued before that user was created (for an earlier user of the name)`,
        undefined,
        name,
      );
    }
    return principal;
  }
}

/**
 * The rate limit's key: the address's block (an IPv6 peer's /64, see `addressBlock`), or the
 * transport when there is no address (the Unix socket).
 */
function sourceKey(origin: CallOrigin): string {
  return origin.source === null ? origin.transport : addressBlock(origin.source);
}
