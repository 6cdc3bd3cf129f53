/**
 * The authorization matrix (docs/security.md, "Who may do what"), independent of any adapter: for
 * every operation of the service, what each kind of caller gets. An adapter's test maps each of
 * its routes or methods onto one operation and checks every cell through the real adapter; REST
 * does it in rest-authorization-matrix.test.ts, RPC in rpc-authorization-matrix.test.ts.
 */

/** The callers every operation is tried as. */
export const IDENTITIES = [
  'no credential',
  'wrong token',
  'expired token',
  'revoked token',
  'viewer',
  'user on own job',
  "user on another user's job",
  'admin',
  /** A `user` authenticated by its client certificate (no token), on its own job. */
  'mTLS user',
] as const;

export type Identity = (typeof IDENTITIES)[number];

/**
 * What a call ends with: `ok` (it passed authorization and did its work, or answered the state
 * its target is in), or the error code of a refusal.
 */
export type Outcome = 'ok' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND';

/**
 * Who may call an operation:
 * - `public`: anyone, without credentials;
 * - `anyone`: every authenticated caller;
 * - `job reader`: admins and viewers any job, users their own (another's is NOT_FOUND);
 * - `job writer`: admins any job, users their own (another's NOT_FOUND); viewers FORBIDDEN;
 * - `writer`: admins and users; viewers FORBIDDEN;
 * - `observer`: admins and viewers; users FORBIDDEN;
 * - `admin`: admins only.
 */
export type Access = 'public' | 'anyone' | 'job reader' | 'job writer' | 'writer' | 'observer' | 'admin';

/** The operations of the service, with who may call them. */
export const OPERATIONS = {
  health: 'public',
  'api:describe': 'anyone',
  'job:submit': 'writer',
  'job:run': 'writer',
  'job:list': 'anyone',
  /** Watch job events: everyone, each hearing of the jobs it may see (`job reader` per event). */
  'job:events': 'anyone',
  'job:resolve': 'job reader',
  'job:get': 'job reader',
  'job:output': 'job reader',
  'job:wait': 'job reader',
  'job:result': 'job reader',
  'job:stop': 'job writer',
  'job:pause': 'job writer',
  'job:resume': 'job writer',
  'job:delete': 'job writer',
  'jobs:prune': 'writer',
  'task:list': 'anyone',
  'task:run': 'writer',
  'tasks:reload': 'admin',
  'queue:list': 'anyone',
  'queue:get': 'anyone',
  'queue:set': 'admin',
  'queue:pause': 'admin',
  'queue:resume': 'admin',
  'server:drain-state': 'observer',
  'server:nodes': 'observer',
  'server:drain': 'admin',
  'server:undrain': 'admin',
  'user:list': 'admin',
  'user:add': 'admin',
  'user:set': 'admin',
  'user:remove': 'admin',
  'token:list': 'admin',
  'token:create': 'admin',
  'token:revoke': 'admin',
  'audit:list': 'admin',
  'cert:list': 'admin',
  'cert:issue': 'admin',
  'cert:revoke': 'admin',
  'metrics:scrape': 'admin',
  'webhook:list': 'admin',
  'webhook:add': 'admin',
  'webhook:remove': 'admin',
  /** Every caller; a user sees the deliveries of its own jobs only. */
  'webhook:deliveries': 'anyone',
} as const satisfies Record<string, Access>;

export type Operation = keyof typeof OPERATIONS;

/** The cell of the matrix: what `identity` gets from an operation with `access`. */
export function expectedOutcome(access: Access, identity: Identity): Outcome {
  if (access === 'public') return 'ok';
  if (['no credential', 'wrong token', 'expired token', 'revoked token'].includes(identity)) {
    return 'UNAUTHENTICATED';
  }
  const role = identity === 'admin' ? 'admin' : identity === 'viewer' ? 'viewer' : 'user';
  const own = identity !== "user on another user's job"; // 'mTLS user' acts on its own jobs
  switch (access) {
    case 'anyone':
      return 'ok';
    case 'job reader':
      return role === 'user' && !own ? 'NOT_FOUND' : 'ok';
    case 'job writer':
      if (role === 'user' && !own) return 'NOT_FOUND';
      return role === 'viewer' ? 'FORBIDDEN' : 'ok';
    case 'writer':
      return role === 'viewer' ? 'FORBIDDEN' : 'ok';
    case 'observer':
      return role === 'user' ? 'FORBIDDEN' : 'ok';
    case 'admin':
      return role === 'admin' ? 'ok' : 'FORBIDDEN';
  }
}
