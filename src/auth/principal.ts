import type { JobIsolation } from '../core/job.ts';

/**
 * Who is calling, once authenticated (docs/security.md has the whole matrix).
 * - `admin`: sees and acts on every job, configures queues and the server, manages users and tokens.
 * - `user`: starts jobs; sees, follows, stops, pauses and deletes only the jobs it started.
 * - `viewer`: reads every job, its output and the queues; changes nothing.
 */
export type Role = 'admin' | 'user' | 'viewer';

export const ROLES: readonly Role[] = ['admin', 'user', 'viewer'];

/** Immutable: authentication hands out frozen principals, shared by every request of a user. */
export interface Principal {
  /** The user name, recorded as the owner of the jobs it starts and on the stops it asks for. */
  readonly user: string;
  readonly role: Role;
  /**
   * The OS account the user's jobs run as, as configured (`user add --run-as`); null or absent
   * when none is set. Stored and passed on only: the runtime decides what it means.
   */
  readonly runAs?: string | null;
  /** The user's default isolation for its jobs (`user set --isolation`); null or absent for none. */
  readonly isolation?: JobIsolation | null;
}

/**
 * The user tokenless `POST /run` requests act as (`serve --run-without-token`): a principal of its
 * own, not a real user's, since any local process can call that way, and it must share no dedupe
 * scope, job, output, OS account, limit or audit entry with any user. Its `_` makes it a name no
 * real user can have (`checkUserName` wants a letter or digit first): no user, token or
 * certificate ever names it, and no removed user of that name left jobs or a pool account.
 */
export const TOKENLESS_USER = '_run-without-token';

/**
 * The principal of a tokenless `/run`: a `user` (its own jobs only), with no run-as account (its
 * jobs run as its own pool account as root, as the server's account with `--single-account`).
 */
export const TOKENLESS_PRINCIPAL: Principal = Object.freeze({
  user: TOKENLESS_USER,
  role: 'user',
  runAs: null,
});

/**
 * How a call reached the server, for the audit trail: REST over `tcp` or the `unix` socket, an
 * in-process call (`internal`), an RPC by its protocol (`grpc`, `grpc-web`, `connect`), or a call
 * another node of a cluster forwarded (`node`), which that node recorded too, with its client's
 * own transport and address.
 */
export type Transport = 'tcp' | 'unix' | 'internal' | 'grpc' | 'grpc-web' | 'connect' | 'node';

/** Where a call came from: set by the adapter that received it. */
export interface CallOrigin {
  /** The peer's address (`127.0.0.1`), or `local` for the Unix socket; null when unknown. */
  readonly source: string | null;
  readonly transport: Transport;
}

/**
 * A principal with where its call came from: what the service records in the audit trail. A bare
 * `Principal` is a valid caller too (an in-process call: no source, transport `internal`).
 */
export interface Caller extends Principal {
  readonly source?: string | null;
  readonly transport?: Transport;
  /**
   * The node that forwarded this call to this one (docs/cluster.md, "Forwarding between nodes"),
   * having authenticated and authorised it there; absent for a call a client made here. A
   * forwarded call is never forwarded again.
   */
  readonly via?: string;
  /**
   * The user's credentials revision when the call was authenticated (`UserDirectory.revision`):
   * once the user is disabled, removed or given another role, what the call would still do (open a
   * stream, change something) is refused, since what authorized it is gone. Absent for in-process
   * calls.
   */
  readonly revision?: number;
  /** The token the call was authenticated with (its id): its revocation refuses the same. */
  readonly tokenId?: string;
  /**
   * When that token expires (ms since the epoch), if it does: the streams the call opens end
   * then, as a call made after it would be refused.
   */
  readonly tokenExpiresAt?: number;
}

/** Whether the token `caller` was authenticated with has expired by `now` (ms since the epoch). */
export function tokenExpired(caller: Pick<Caller, 'tokenExpiresAt'>, now: number): boolean {
  return caller.tokenExpiresAt !== undefined && now >= caller.tokenExpiresAt;
}

/** True for the roles that may see every job (and its output). */
export function seesEveryJob(role: Role): boolean {
  return role === 'admin' || role === 'viewer';
}
