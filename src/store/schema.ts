import type { Generated } from 'kysely';
import type { JobHold, JobStatus } from '../core/job.ts';

/**
 * The tables as Kysely sees them (see migrations/ for the DDL and docs/storage.md for why).
 * Times are integer Unix milliseconds, so a `Date` round-trips exactly.
 */
export interface StoreSchema {
  jobs: JobRow;
  job_labels: JobLabelRow;
  queues: QueueRow;
  job_deps: JobDepRow;
  job_dirs_to_remove: JobDirToRemoveRow;
  job_results: JobResultRow;
  users: UserRow;
  tokens: TokenRow;
  audit: AuditRow;
  webhooks: WebhookRow;
  webhook_outbox: WebhookOutboxRow;
  webhook_deliveries: WebhookDeliveryRow;
  job_status_counts: JobStatusCountRow;
  /** PostgreSQL only: the nodes of a cluster (migration 0004-cluster). */
  nodes: NodeRow;
  /** PostgreSQL only: the pool accounts the nodes share (migration 0008-pool-accounts). */
  pool_accounts: PoolAccountRow;
}

/** A user's pool uid (PostgreSQL migration 0008-pool-accounts); see `PgPoolAccounts`. */
export interface PoolAccountRow {
  user_name: string;
  uid: number;
  allocated_at: number;
}

/** A node of a cluster (PostgreSQL migration 0004-cluster); see `NodeRecord`. */
export interface NodeRow {
  id: string;
  url: string;
  state: 'active' | 'draining' | 'left' | 'lost';
  joined_at: number;
  heartbeat_at: number;
  reason: string | null;
  /** What the sessions of the server that last joined as it are called (migration 0009-node-sessions). */
  session_name: string | null;
}

/** A server-wide webhook (migration 0008). `events` is a JSON array of event names. */
export interface WebhookRow {
  id: string;
  url: string;
  events: string;
  secret: string;
  created_at: number;
  created_by: string;
}

/** A job event written by the triggers of migration 0008, waiting to be fanned out. */
export interface WebhookOutboxRow {
  seq: Generated<number>;
  event: string;
  job_id: string;
  at: number;
  /** The job row as JSON (`JobRow`'s columns) when the event happened. */
  snapshot: string;
}

/** One event for one target, with its attempts. */
export interface WebhookDeliveryRow {
  id: string;
  event: string;
  job_id: string;
  owner: string;
  /** null: the job's own `notify`. */
  webhook_id: string | null;
  url: string;
  /** 1: may reach private addresses (an admin's job, or a server-wide webhook). */
  trusted: number;
  body: string;
  created_at: number;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_at: number | null;
  last_at: number | null;
  last_status: number | null;
  last_error: string | null;
  /**
   * Who holds the attempt in flight (SQLite 0012, PostgreSQL 0005-delivery-claims); null when
   * none does. Not part of `DeliveryRecord`: the store's own bookkeeping.
   */
  claimed_by: string | null;
}

/** Jobs per status, kept by triggers (migration 0008). */
export interface JobStatusCountRow {
  status: string;
  n: number;
}

/** A user (migration 0005). */
export interface UserRow {
  name: string;
  role: 'admin' | 'user' | 'viewer';
  run_as: string | null;
  /** 0 or 1. */
  disabled: number;
  /** JSON of the user's default `isolation`; null for none (migration 0009). */
  isolation: string | null;
  created_at: number;
  /** The user's default and maximum limits, `JobLimits` JSON (migration 0007); null: none. */
  default_limits: string | null;
  max_limits: string | null;
}

/** A token, by its SHA-256 (never the token). */
export interface TokenRow {
  id: string;
  user: string;
  label: string | null;
  sha256: string;
  created_at: number;
  last_used_at: number | null;
  expires_at: number | null;
  revoked_at: number | null;
}

/** One audit entry; `id` is assigned by SQLite in the order entries are appended. */
export interface AuditRow {
  id: Generated<number>;
  at: number;
  user: string | null;
  role: string | null;
  source: string | null;
  transport: string | null;
  action: string;
  target: string | null;
  result: string;
}

/** The result a job left (migration 0006); deleted with its job (`on delete cascade`). */
export interface JobResultRow {
  job_id: string;
  /** One JSON value, as text. */
  json: string;
}

/** A deleted job whose directory is still to be removed (written with the delete, for crash safety). */
export interface JobDirToRemoveRow {
  id: string;
  /**
   * PostgreSQL only: the node whose disk holds the directory (the job's `node`), since only that
   * node can remove it. SQLite's table has no such column: its one server holds every directory.
   */
  node?: string | null;
}

/** A queue's settings; a queue without a row has the defaults. Every queue a job named has one. */
export interface QueueRow {
  name: string;
  /** null: no limit. */
  concurrency: number | null;
  /** null: no limit. */
  max_waiting: number | null;
  /** 0 or 1. */
  paused: number;
  /** The queue's default and maximum limits, `JobLimits` JSON (migration 0007); null: none. */
  default_limits: string | null;
  max_limits: string | null;
  /** JSON of the queue's default `isolation`; null for none (migration 0009). */
  isolation: string | null;
}

/** "job_id waits for dep_id": the edge points at the dependency's latest attempt. */
export interface JobDepRow {
  job_id: string;
  dep_id: string;
}

/** One job. The spec is JSON; what lists filter on is copied into real, indexed columns. */
export interface JobRow {
  id: string;
  status: JobStatus;
  owner: string;
  /** `spec.name`, copied for the name index. */
  name: string | null;
  node: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  /** `JobSpec` as JSON. */
  spec: string;
  /** `ProcessIdentity` as JSON, or null before the job started. */
  process: string | null;
  /** The three `stop_` columns are all null or all set. */
  stop_at: number | null;
  stop_by: string | null;
  stop_grace_ms: number | null;
  /** `StopRequest.alsoBy`: a user's stop during the timeout's; null otherwise (migration 0013 / pg 0007). */
  stop_also_by: string | null;
  /** 0 or 1. */
  stop_forced: number;
  /** The job has an exit exactly when `exit_reason` is not null. */
  exit_code: number | null;
  exit_signal: string | null;
  exit_reason: string | null;
  stdout_bytes: number;
  stderr_bytes: number;
  /** `spec.queue`, `spec.priority` and `spec.dedupeKey`, copied for the dispatch indexes. */
  queue: string;
  priority: number;
  dedupe_key: string | null;
  /** `dedupeScopeOf(job)`: the user among whose jobs `dedupe_key` is unique; null without a key. */
  dedupe_scope: string | null;
  run_at: number | null;
  hold: JobHold;
  attempt: number;
  retry_of: string | null;
  retried_as: string | null;
  paused_at: number | null;
  /** `JobUsage` JSON, recorded at the end (migration 0007); null before, or for older jobs. */
  usage: string | null;
  /** Why the job's result was not kept (migration 0006); null otherwise. */
  result_error: string | null;
  /** The latest `JobProgress` as JSON (its `at` in Unix milliseconds). */
  progress: string | null;
}

/**
 * One label of one job: the index behind label filters. `owner` is copied from the job (it never
 * changes) so that "this owner's jobs with this label" is an index range too.
 */
export interface JobLabelRow {
  job_id: string;
  key: string;
  value: string;
  owner: string;
}
