import type { JobIsolation, JobLimits, JobStatus, JobUsage } from '../core/job.ts';
import type { LimitsInput } from '../core/spec.ts';

/**
 * Why a queued job has not started (docs/queues.md): `dependencies` (a job in `after` has not
 * succeeded yet), `time` (its `runAt` has not come) or `queue` (its queue is full or paused, or
 * the server drains).
 */
export type WaitingFor = 'dependencies' | 'time' | 'queue';

/** A job as REST v1 answers it (times in ISO 8601). */
export interface ApiJob {
  readonly id: string;
  readonly name: string | null;
  readonly command: string;
  readonly args: readonly string[];
  readonly shell: boolean;
  readonly cwd: string;
  /** Its timeout (the server's default when it set none); null for none. Absent from older servers. */
  readonly timeoutMs?: number | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly status: JobStatus;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly reason: string | null;
  readonly owner: string;
  readonly pid: number | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly stopRequestedAt: string | null;
  readonly outputBytes: { readonly stdout: number; readonly stderr: number };
  /** The queue it waits or ran in (`default` unless named). */
  readonly queue: string;
  /** -1000 to 1000; higher starts first within its queue. */
  readonly priority: number;
  /** Not started before this time; null for as soon as possible. */
  readonly runAt: string | null;
  /** Jobs that must all succeed (their last attempt) before this one starts. */
  readonly after: readonly string[];
  /** 1 for the first run. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** The previous attempt's id (null on the first). */
  readonly retryOf: string | null;
  /** The next attempt's id, once there is one. */
  readonly retriedAs: string | null;
  readonly dedupeKey: string | null;
  /** The user among whose jobs `dedupeKey` is unique (its owner unless an admin named another). */
  readonly dedupeScope?: string | null;
  /** Set while the job is `paused`. */
  readonly pausedAt: string | null;
  /** The node that runs it, ran it, or claimed it last (docs/cluster.md). */
  readonly node: string;
  /** Set while the job is `queued`. */
  readonly waitingFor: WaitingFor | null;
  /** The OS account its processes run as; null for the server's own (absent from older servers). */
  readonly account?: { readonly name: string; readonly uid: number; readonly gid: number } | null;
  /** Its resource limits as they apply (absent from older servers). */
  readonly limits?: JobLimits;
  /** What it used, from its cgroups (absent from older servers). */
  readonly usage?: JobUsage | null;
  /** The named task it runs, and its parameters; null for a plain job (absent from older servers). */
  readonly task?: string | null;
  readonly params?: Readonly<Record<string, string | number | boolean>> | null;
  /** Why its result was not kept; null otherwise. */
  readonly resultError?: string | null;
  /** Its latest progress report; null for none. */
  readonly progress?: {
    readonly done: number;
    readonly total: number | null;
    readonly message: string | null;
    readonly at: string;
  } | null;
}

/** The body of `POST /v1/jobs`. */
export interface CreateJobBody {
  command: string;
  args?: string[];
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  name?: string;
  labels?: Record<string, string>;
  queue?: string;
  priority?: number;
  /** Not with `delayMs`. */
  runAt?: string;
  delayMs?: number;
  after?: string[];
  retry?: RetryBody;
  dedupeKey?: string;
  onDuplicate?: OnDuplicate;
  /** Admins: run as root instead of the admin's own account. */
  runAsRoot?: boolean;
  limits?: LimitsInput;
  /** Linux namespaces to run in (docs/isolation.md). */
  isolation?: JobIsolation;
  /** The job's own webhook (docs/webhooks.md). */
  notify?: { url: string; events?: string[] };
}

/** `attempts` counts every run, the first included; backoff fields left out take the server's defaults. */
export interface RetryBody {
  attempts: number;
  backoff?: { initialMs?: number; factor?: number; maxMs?: number };
}

/** What a submission with a `dedupeKey` already queued or running gets: a 409 `DUPLICATE`, or that job. */
export type OnDuplicate = 'reject' | 'return';

export interface JobPage {
  readonly jobs: readonly ApiJob[];
  readonly nextCursor: string | null;
}

export interface ListQuery {
  status?: string;
  name?: string;
  /** Exact queue name. */
  queue?: string;
  /** Case-insensitive substring of the name or the command line; 1 to 200 characters. */
  text?: string;
  label?: string[];
  limit?: number;
  cursor?: string;
}

/** A view of a job's output: one stream, or both interleaved in the order the server observed. */
export type OutputView = 'stdout' | 'stderr' | 'all';

/** A node of the cluster as `GET /v1/nodes` answers it (docs/cluster.md). */
export interface ApiNode {
  readonly id: string;
  readonly url: string;
  readonly state: 'active' | 'draining' | 'left' | 'lost';
  readonly joinedAt: string;
  readonly heartbeatAt: string;
  /** Why it is `lost` or `left`. */
  readonly reason: string | null;
  /** Its jobs running or paused now. */
  readonly running: number;
  /** It is the node that answered. */
  readonly self: boolean;
}

/** A queue as `GET /v1/queues/{name}` answers it. */
export interface ApiQueue {
  readonly name: string;
  /** The most of its jobs that run at once; null for no limit. */
  readonly concurrency: number | null;
  /** The most of its jobs that may wait; null for no limit. */
  readonly maxWaiting: number | null;
  /** Nothing new starts from it while paused. */
  readonly paused: boolean;
  /** Limits its jobs get where they set none (absent from older servers). */
  readonly defaultLimits?: JobLimits;
  /** Limits none of its jobs may exceed (absent from older servers). */
  readonly maxLimits?: JobLimits;
  /** The isolation of its jobs whose spec names none; null for none. */
  readonly isolation?: JobIsolation | null;
  /** Running and paused jobs. */
  readonly running: number;
  /** Queued jobs. */
  readonly waiting: number;
}

/** The body of `PUT /v1/queues/{name}`: any of the settings. */
export interface QueueSettings {
  concurrency?: number | null;
  maxWaiting?: number | null;
  paused?: boolean;
  defaultLimits?: JobLimits;
  maxLimits?: JobLimits;
  /** The isolation of the queue's jobs whose spec names none; null for none. */
  isolation?: JobIsolation | null;
}

/** The answer of `POST /v1/drain` and `GET /v1/drain`. */
export interface DrainState {
  readonly draining: boolean;
  /** Jobs still running on this server. */
  readonly running: number;
}

/** A user as REST v1 answers it. */
export interface ApiUser {
  readonly name: string;
  readonly role: string;
  readonly runAs: string | null;
  readonly disabled: boolean;
  readonly createdAt: string;
  /** Limits its jobs get where neither they nor their queue set one (absent from older servers). */
  readonly defaultLimits?: JobLimits;
  /** Limits none of its jobs may exceed (absent from older servers). */
  readonly maxLimits?: JobLimits;
  /** The isolation of its jobs when neither their spec nor their queue names one; null for none. */
  readonly isolation?: JobIsolation | null;
}

/** A token as listed: never the secret. */
export interface ApiToken {
  readonly id: string;
  readonly user: string;
  readonly label: string | null;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  readonly state: 'active' | 'expired' | 'revoked';
}

/** One audit entry. */
export interface ApiAuditEntry {
  readonly id: string;
  readonly at: string;
  readonly user: string | null;
  readonly role: string | null;
  readonly source: string | null;
  readonly transport: string | null;
  readonly action: string;
  readonly target: string | null;
  readonly result: string;
}

export interface AuditQuery {
  readonly user?: string;
  readonly action?: string;
  readonly since?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** A client certificate the server issued (`GET /v1/certs`). */
export interface ApiCertificate {
  readonly serial: string;
  readonly user: string;
  readonly issuedAt: string;
  readonly notAfter: string;
  readonly revokedAt: string | null;
}

/** `POST /v1/certs`: the certificate, its key (shown once) and the server's CA. */
export interface IssuedCertificatePems {
  readonly certificate: ApiCertificate;
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

/** A server-wide webhook as REST v1 lists it (never its secret): docs/webhooks.md. */
export interface ApiWebhook {
  readonly id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly createdAt: string;
  readonly createdBy: string;
}

/** One webhook delivery with its attempts and last answer. */
export interface ApiDelivery {
  readonly id: string;
  readonly event: string;
  readonly jobId: string;
  readonly webhookId: string | null;
  readonly url: string;
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly attempts: number;
  readonly createdAt: string;
  readonly nextAttemptAt: string | null;
  readonly lastAttemptAt: string | null;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
}
