/**
 * The audit trail's vocabulary (docs/security.md, "Audit trail"). Every state-changing call and
 * every failed authentication becomes one entry: who, from where, did what to what, with which
 * result. Actions are named `noun:verb`, like the lifecycle events.
 */
export const AUDIT_ACTIONS = [
  'job:submit',
  'job:stop',
  'job:pause',
  'job:resume',
  'job:delete',
  'jobs:prune',
  'queue:set',
  'tasks:reload',
  'server:drain',
  'server:undrain',
  'user:add',
  'user:set',
  'user:remove',
  'token:create',
  'token:revoke',
  'cert:issue',
  'cert:revoke',
  'webhook:add',
  'webhook:remove',
  'auth:fail',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** One audited event, as recorded. */
export interface AuditEntry {
  readonly at: Date;
  /** The caller's user name; for a failed authentication, null (the user is not known). */
  readonly user: string | null;
  readonly role: string | null;
  /** The peer address (`127.0.0.1`, `local` for the Unix socket), or null when not known. */
  readonly source: string | null;
  /** `tcp`, `unix`, `internal` (in-process). */
  readonly transport: string | null;
  readonly action: AuditAction;
  /** What it acted on: a job id, a queue, a user or token id; null when nothing in particular. */
  readonly target: string | null;
  /** `ok`, or the error code the call ended with (`FORBIDDEN`, `UNAUTHENTICATED`, ...). */
  readonly result: string;
}

/** Where entries go. `record` never throws and never waits: a sink batches its writes. */
export interface AuditSink {
  record(entry: AuditEntry): void;
}

/** A sink that keeps nothing: for in-process uses without an audit trail (tests of other parts). */
export const NO_AUDIT: AuditSink = { record: () => undefined };
