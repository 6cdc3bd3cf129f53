import type {
  Job,
  JobExit,
  JobIsolation,
  JobLimits,
  JobProgress,
  JobStatus,
  JobUsage,
  OutputBytes,
  ProcessIdentity,
  StopRequest,
} from '../core/job.ts';
import type { LimitSettings } from '../core/limits.ts';
import type { AdmitOptions, QueuesForgottenListener } from './forgotten-queues.ts';

/** What a submission takes from its queue (`JobStore.queueDefaults`). */
export interface QueueDefaults {
  readonly limits: LimitSettings;
  readonly isolation: JobIsolation | null;
}

/** A queue's settings. */
export interface QueueSettings {
  /** Most jobs of the queue running (or paused) at once; null for no limit. */
  readonly concurrency: number | null;
  /** Most jobs that may wait in the queue; null for no limit. */
  readonly maxWaiting: number | null;
  /** Nothing new starts from a paused queue. */
  readonly paused: boolean;
  /** Limits its jobs get where they set none (docs/isolation.md); `{}` for none. */
  readonly defaultLimits: JobLimits;
  /** Limits none of its jobs may exceed; `{}` for none. */
  readonly maxLimits: JobLimits;
  /**
   * The namespaces a job of the queue runs in when its spec names none (docs/isolation.md);
   * null for none (the job's user's default, else the server's, applies).
   */
  readonly isolation: JobIsolation | null;
}

/** A queue as listed: its settings and what is in it now. */
export interface QueueState extends QueueSettings {
  readonly name: string;
  /** Jobs holding a slot: running, paused, or being started. */
  readonly running: number;
  /** Queued jobs, whatever they wait for. */
  readonly waiting: number;
}

/** What `admitJob` did: stored the job, or found a queued or running one with its dedupe key. */
export type Admission =
  | { readonly admitted: true; readonly job: Job }
  | { readonly admitted: false; readonly existing: Job };

/** Jobs `JobStore.takeOverJobs` took over from one other node name. */
export interface TakenOver {
  /** The node name they were recorded under. */
  readonly from: string;
  /** How many: running, paused or being started. */
  readonly jobs: number;
}

/** Filters for history listing. Every filter is optional; results are newest first. */
export interface JobListQuery {
  /** Only jobs in one of these statuses. */
  readonly status?: readonly JobStatus[];
  readonly owner?: string;
  /** Exact name. */
  readonly name?: string;
  /** Exact queue name. */
  readonly queue?: string;
  /**
   * Jobs whose name or command line (`command` and `args` joined by spaces) contains this text,
   * ignoring ASCII case (SQLite's `lower`); 1 to 200 characters, no wildcards.
   */
  readonly text?: string;
  /**
   * Jobs whose id starts with this text (lower-case hex digits and dashes, 1 to 36 characters):
   * one range of the primary key (or of the owner index), as ids are time-sortable strings.
   */
  readonly idPrefix?: string;
  /** Jobs carrying this label key with this value. */
  readonly label?: { readonly key: string; readonly value: string };
  /** Page size, 1 to 1000. */
  readonly limit: number;
  /** `nextCursor` of the previous page: the page continues strictly after (older than) it. */
  readonly cursor?: string;
}

export interface JobPage {
  readonly jobs: Job[];
  /** Pass back as `cursor` for the next, older page; null on the last page. */
  readonly nextCursor: string | null;
}

/**
 * A position in the finished jobs, ordered by `(finishedAt, id)`: retention deletes what lies
 * strictly before it. `{ finishedAt: T, id: '' }` is "finished before T".
 */
export interface FinishedBound {
  readonly finishedAt: Date;
  readonly id: string;
}

/** The limits retention keeps finished jobs within; null lifts a limit. */
export interface RetentionLimits {
  /** Finished jobs that finished before this time are deleted. */
  readonly finishedBefore: Date | null;
  /** Only the newest this many finished jobs (by `finishedAt`) are kept. */
  readonly keepNewest: number | null;
}

/** One batch of deletes: finished jobs before `before`, oldest first. */
export interface DeleteFinishedQuery {
  readonly before: FinishedBound;
  /** Only this owner's jobs. */
  readonly owner?: string;
  /** Most jobs deleted by this call, 1 to 10,000. */
  readonly limit: number;
}

/** What a job ended as: its final status and how it got there. */
export interface JobFinish {
  readonly status: JobStatus;
  readonly exit: JobExit;
  readonly finishedAt: Date;
  readonly outputBytes: OutputBytes;
  /**
   * The stop the job ended by, when it may not be on record: one asked for while the disk was
   * full is carried out anyway and recorded with the end. Ignored when a stop is on record.
   */
  readonly stop?: StopRequest;
  /** The stop had to kill processes that outlived its grace (recorded with the end if not before). */
  readonly stopForced?: boolean;
  /** What the job used, read from its cgroups at its end; absent where nothing measured it. */
  readonly usage?: JobUsage;
  /**
   * What the job left at `JOBWORKER_RESULT`: its JSON value as text, or why it was not kept.
   * Absent: it wrote none.
   */
  readonly result?: { readonly json: string } | { readonly error: string };
  /**
   * A failure to start: the node that claimed the job and records it. Recorded only while that
   * node's claim stands (queued with `hold: 'starting'` and that `node`), or while the job runs on
   * it (its start was recorded though the answer to that commit was lost); otherwise
   * `ClaimLostError`, nothing recorded. A node cut off from the store while it records such a
   * failure may have been declared lost meanwhile, and the job claimed and run by another node:
   * its late write must not end that run.
   */
  readonly claimedBy?: string;
}

/**
 * The storage port, in domain terms. Each method is one transaction; each state change
 * checks the transition against the job's current status inside it (and throws
 * `IllegalTransitionError` naming that status), so two callers racing cannot both win.
 * Implementations: SQLite (`store/sqlite`), PostgreSQL (`store/postgres`); `test/store/job-store-contract.ts`
 * is the one suite both must pass.
 */
export interface JobStore {
  /**
   * Records a new job exactly as given (normally `queued`).
   * An id already stored, or not a UUIDv7: `ValidationError` on `id`.
   */
  insertJob(job: Job): Promise<void>;
  /** The job, or undefined for an unknown id. */
  getJob(id: string): Promise<Job | undefined>;
  /**
   * One page of history, newest first, with O(log n) cost per page whatever the depth.
   * A `limit` outside 1..1000, a malformed cursor, an empty or unknown status: `ValidationError`
   * on `limit`, `cursor` or `status`.
   */
  listJobs(query: JobListQuery): Promise<JobPage>;
  /**
   * `queued → running`, recording where its processes are. With `claimedBy` (the node that claimed
   * and spawned it), only while that node's claim stands (`hold: 'starting'`, `node`); otherwise
   * `ClaimLostError`, nothing recorded. A store only one node uses may skip that check.
   */
  markStarted(id: string, process: ProcessIdentity, startedAt: Date, claimedBy?: string): Promise<Job>;
  /**
   * Records the first stop request of a queued or running job; a second request leaves the first in
   * place and returns the job, except that a user's stop during the timeout's is kept beside it
   * (`StopRequest.alsoBy`: the run is then not retried). On a finished job:
   * `IllegalTransitionError` (to `stopped`), nothing recorded.
   */
  markStopRequested(id: string, stop: StopRequest): Promise<Job>;
  /**
   * Records that the stop had to kill processes that outlived the grace period. Only while the job
   * is running (else `IllegalTransitionError` to `stopped`); a second call returns the job unchanged.
   */
  markStopForced(id: string): Promise<Job>;
  /**
   * Moves a job to a final status with its exit details (a non-final `finish.status`:
   * `ValidationError`); a user's stop during the timeout's is named in the reason. With
   * `finish.claimedBy`, only while that node's claim stands (`ClaimLostError` otherwise).
   */
  markFinished(id: string, finish: JobFinish): Promise<Job>;
  /** Every job of this node in status `running` or `paused`: what recovery must reconcile at start. */
  listRunning(node: string): Promise<Job[]>;
  /**
   * On a store only one server uses (SQLite, behind its data directory's lock): records every job
   * running, paused or being started (`hold: 'starting'`) under another node name as `node`'s, in
   * one transaction, and returns how many it took from each name (`[]` for none). Every such job is
   * that server's, whatever name it carries: only its node id changed since (the default, the host
   * name, is new in every container), and recovery (`listRunning`, `listStarting`) reads jobs by
   * the node id alone. A shared store (PostgreSQL) changes nothing and returns `[]`: other nodes
   * run their own jobs there, and a dead node's are the lost-node sweep's.
   */
  takeOverJobs(node: string): Promise<TakenOver[]>;

  /**
   * Admits a new `queued` job in one transaction: a queued or running job with the same dedupe key
   * in the same scope (`dedupeScopeOf`: its owner's, unless an admin named another user's) wins
   * (`admitted: false`, nothing stored); the same key in another scope does not; a queue at its `maxWaiting` throws `QueueFullError`;
   * an `after` id that is unknown throws `ValidationError` on `after[i]`. The stored job waits for
   * its dependencies (`hold: 'after'`, each edge to the dependency's latest attempt), or its
   * `runAt` (`delay`), or a slot (`null`); when a dependency already ended without success it is
   * stored `cancelled` with a reason naming it. The queue gets a settings row if it had none,
   * unless the store holds `options.maxQueues` queues already: then `ValidationError` on `queue`
   * (`queueLimitError`), nothing stored. That count is exact however many callers, processes or
   * nodes admit at once.
   */
  admitJob(job: Job, now: Date, options?: AdmitOptions): Promise<Admission>;
  /**
   * What `admitJob` would do with `job` now, keeping nothing: the same admission, rolled back.
   * Throws what it would throw. For a caller that must make something outside the store (a user's
   * first pool account) only for a job that will be admitted; an admission of another caller
   * coming in between can still change the answer of the `admitJob` that follows.
   */
  previewAdmission(job: Job, now: Date, options?: AdmitOptions): Promise<Admission>;
  /**
   * Claims up to `max` jobs of a queue that wait only for a slot, highest priority then oldest
   * first, for `node` to start (`hold: 'starting'`). Claimed jobs count as running for the queue.
   * The queue's limits are enforced inside the claim, in one transaction: it never makes the jobs
   * holding a slot of the queue (running, paused, being started) exceed its `concurrency`, however
   * many callers, processes or nodes claim at once (it claims at most `concurrency - active`), and a
   * paused queue (or one without a settings row, hence without jobs) gives nothing. A caller's own
   * check of the free slots beforehand is only a fast path.
   */
  claimReady(queue: string, node: string, max: number): Promise<Job[]>;
  /** Jobs that `node` claimed and had not started yet. */
  listStarting(node: string): Promise<Job[]>;
  /**
   * Gives a job `node` claimed back to its queue (`hold: null`), for recovery of a claim never
   * spawned; a stop recorded on the claim makes it `cancelled` instead, in the same change. A
   * claim that is no longer `node`'s (given back and claimed by another node since) stays as it is.
   */
  releaseClaim(id: string, node: string): Promise<Job>;
  /** Delayed jobs whose `runAt` is at or before `now` now wait only for a slot; returns how many. */
  promoteDue(now: Date): Promise<number>;
  /** The earliest `runAt` of a delayed job, or null when none waits for a time. */
  nextRunAt(): Promise<Date | null>;
  /**
   * A queued job (not being started) becomes `cancelled` with the stop on record and `reason`;
   * a job being started gets only the stop recorded (its starter stops it once spawned). On a job
   * that is not queued: `IllegalTransitionError` to `cancelled`.
   */
  cancelQueued(id: string, stop: StopRequest, reason: string): Promise<Job>;
  /**
   * Moves a job to a final status like `markFinished` and, in the same transaction, stores
   * `next` (its next attempt, queued), moves every dependency edge to it and names the attempt in
   * the reason (`finish.exit.reason` is the run's own). Unless a user asked the run to stop (a
   * stop on record or with `finish` that is not the timeout's, or one during it): then it ends as
   * `markFinished` ends it, not retried, and the job returned has no `retriedAs`.
   */
  markRetried(id: string, finish: JobFinish, next: Job): Promise<Job>;
  /**
   * Once job `id` has ended with no retry to come: its dependents waiting on dependencies are
   * released (all their dependencies succeeded) or cancelled (this one did not succeed), and the
   * dependents of those cancelled in turn. Returns every job it changed.
   */
  settleDependents(id: string, now: Date): Promise<Job[]>;
  /** Jobs waiting on dependencies that have all ended: settles them (recovery after a crash). */
  settleAll(now: Date): Promise<Job[]>;
  /**
   * Records the latest progress of a job that is not final (a late report of a finished job
   * changes nothing); returns the job, or undefined for an unknown or finished one.
   */
  setProgress(id: string, progress: JobProgress): Promise<Job | undefined>;
  /** The JSON text of the result a job left, or undefined for none (or an unknown job). */
  getResult(id: string): Promise<string | undefined>;
  /** `running → paused`, recording when. */
  markPaused(id: string, at: Date): Promise<Job>;
  /** `paused → running`. */
  markResumed(id: string): Promise<Job>;
  /** A queue's settings and counts (the defaults for a queue never configured). */
  getQueue(name: string): Promise<QueueState>;
  /**
   * What a submission takes from its queue, without the queue's counts: its limit defaults and
   * maxima, and its default isolation (null for none). One row read by key, at every submit.
   */
  queueDefaults(name: string): Promise<QueueDefaults>;
  /** Changes the settings given, keeping the others. */
  putQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueState>;
  /**
   * Every queue that has a settings row, by name, with its counts: one statement whatever the
   * number of queues, its counts read from the partial indexes of waiting and active jobs
   * (O(jobs waiting or holding a slot), never the history).
   */
  listQueues(): Promise<QueueState[]>;
  /**
   * The settings of every queue that has a job waiting only for a slot: what a dispatch pass
   * visits, in O(log n) per such queue, however many queue names were ever used.
   */
  listReadyQueues(): Promise<(QueueSettings & { readonly name: string })[]>;
  /** How many jobs of a queue hold a slot (running, paused, being started). */
  countActive(queue: string): Promise<number>;

  /**
   * Deletes one finished job, its labels and its dependency edges, and records its id among the
   * directories to remove, in one transaction; returns the job as it was. Unknown id:
   * `NotFoundError`; queued, running or paused: `NotFinishedError`; a queued job waits for it:
   * `InUseError`. Nothing is deleted when it throws. When it was the last job of a queue that has
   * no settings (`UNSET_QUEUE`), the queue's row goes in the same transaction, and the listeners of
   * `onQueuesForgotten` hear of it after the commit.
   */
  deleteJob(id: string): Promise<Job>;
  /**
   * Where retention cuts: the later of "finished before `finishedBefore`" and "older than the
   * `keepNewest` newest finished jobs", or null when no limit cuts (none given, or fewer finished
   * jobs than `keepNewest` and no age limit). Costs one
   * walk of at most `keepNewest` index entries, never a scan of the table.
   */
  retentionBound(limits: RetentionLimits): Promise<FinishedBound | null>;
  /**
   * Deletes up to `limit` finished jobs before `before`, oldest first, as `deleteJob` does (one
   * index range, one transaction), skipping jobs a queued job waits for, and forgetting the queues
   * they were the last jobs of as `deleteJob` does. Returns their ids; fewer than `limit` means none
   * is left before the bound.
   */
  deleteFinished(query: DeleteFinishedQuery): Promise<string[]>;
  /**
   * Up to `limit` ids of deleted jobs whose directories are still to be removed; with `node`, only
   * those on that node's disk (a store shared by a cluster: each node removes its own).
   */
  listDirsToRemove(limit: number, node?: string): Promise<string[]>;
  /**
   * Calls `listener` with the names of the queues each deletion through this store forgot, after
   * its commit, until the returned function is called. Queues another node of a shared store forgot
   * are not told: they are gone from `listQueues`.
   */
  onQueuesForgotten(listener: QueuesForgottenListener): () => void;
  /** Forgets these ids once their directories are gone. */
  forgetDirsRemoved(ids: readonly string[]): Promise<void>;
  /**
   * Gives back the memory the store holds only to be quicker (a page cache), once the server is
   * quiet (src/memory/memory-relief.ts); it fills again as it is used. A store that keeps recent
   * writes apart from their place (SQLite's write-ahead log) also moves them there now, while
   * nothing waits. Nothing a reader sees changes.
   */
  releaseMemory(): Promise<void>;
  close(): Promise<void>;
}
