import type { Job, JobExit, JobStatus, OutputBytes, ProcessIdentity, StopRequest } from '../core/job.ts';

/** Filters for history listing. Every filter is optional; results are newest first. */
export interface JobListQuery {
  /** Only jobs in one of these statuses. */
  readonly status?: readonly JobStatus[];
  readonly owner?: string;
  /** Exact name. */
  readonly name?: string;
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

/** What a job ended as: its final status and how it got there. */
export interface JobFinish {
  readonly status: JobStatus;
  readonly exit: JobExit;
  readonly finishedAt: Date;
  readonly outputBytes: OutputBytes;
}

/**
 * The storage port, in domain terms. Each method is one transaction; each state change
 * checks the transition against the job's current status inside it (and throws
 * `IllegalTransitionError` naming that status), so two callers racing cannot both win.
 * Implementations: SQLite (`store/sqlite`), PostgreSQL later; `test/store/job-store-contract.ts`
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
  /** `queued → running`, recording where its processes are. */
  markStarted(id: string, process: ProcessIdentity, startedAt: Date): Promise<Job>;
  /**
   * Records the first stop request of a queued or running job; a second request leaves the first in
   * place and returns the job. On a finished job: `IllegalTransitionError` (to `stopped`), nothing recorded.
   */
  markStopRequested(id: string, stop: StopRequest): Promise<Job>;
  /**
   * Records that the stop had to kill processes that outlived the grace period. Only while the job
   * is running (else `IllegalTransitionError` to `stopped`); a second call returns the job unchanged.
   */
  markStopForced(id: string): Promise<Job>;
  /** Moves a job to a final status with its exit details (a non-final `finish.status`: `ValidationError`). */
  markFinished(id: string, finish: JobFinish): Promise<Job>;
  /** Every job of this node in status `running`: what recovery must reconcile at start. */
  listRunning(node: string): Promise<Job[]>;
  close(): Promise<void>;
}
