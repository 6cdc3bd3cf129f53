/**
 * The job model: what a job is, what it runs and what became of it.
 *
 * Glossary
 * - job: one run of one command: its spec, state, output and result.
 * - spec: what to run. `command` + `args` are executed directly, never through a
 *   shell, unless `shell` is true (then `command` is a script for `/bin/sh -c`).
 * - output: the exact bytes the job wrote, kept per stream (stdout, stderr).
 * - cursor: a byte position in a job's output; resuming from it shows no gap and no duplicate.
 * - follower: a client streaming a job's output live.
 * - owner: the user who started the job; only the owner and admins may see or stop it.
 * - node: one jobworker server process on one machine.
 * - queue: a named group of jobs with its own concurrency limit; every job is in one (`default`).
 * - attempt: one run of a job with a retry policy; each attempt is a job of its own, linked to the
 *   previous one by `retryOf` and to the next by `retriedAs`.
 * - dependency: a job named in another's `after`; that one starts only once all of them succeeded.
 *
 * This module imports nothing but core/webhook.ts's types: it is shared by every layer.
 */

import type { JobNotify } from './webhook.ts';

/**
 * Where a job is in its life.
 * - `queued`: accepted, not started yet.
 * - `running`: its main process is alive.
 * - `paused`: running, with every process frozen (cgroup freezer, or SIGSTOP); it keeps its queue slot.
 * - `succeeded`: the main process exited with code 0.
 * - `failed`: a non-zero exit, death by a signal nobody asked for, or failure to start.
 * - `stopped`: a user asked it to stop and its processes are gone.
 * - `timed_out`: it ran past its `timeoutMs` and was ended like a stop.
 * - `cancelled`: stopped before it ever started.
 * - `lost`: its fate cannot be known (its processes vanished without an exit status).
 */
export type JobStatus =
  | 'queued'
  | 'running'
  | 'paused'
  | 'succeeded'
  | 'failed'
  | 'stopped'
  | 'timed_out'
  | 'cancelled'
  | 'lost';

export const JOB_STATUSES: readonly JobStatus[] = [
  'queued',
  'running',
  'paused',
  'succeeded',
  'failed',
  'stopped',
  'timed_out',
  'cancelled',
  'lost',
];

/** The two streams a job writes. */
export type OutputStream = 'stdout' | 'stderr';

/**
 * Resource limits applied through the job's cgroup (docs/isolation.md, "Limits"): the normalized
 * form, in plain units. Submissions may write them with units (`"256M"`, `"500m"`); see
 * `normalizeLimits` in core/limits.ts, the one parser. Absent fields are not limited.
 */
export interface JobLimits {
  /** CPU quota in cores (0.5 = half of one core), to a thousandth; `cpu.max` / `cpu.cfs_quota_us`. */
  readonly cpu?: number;
  /** Hard memory limit in bytes; the kernel OOM-kills the job's processes beyond it. */
  readonly memory?: number;
  /** Swap the job may use beyond `memory`, in bytes (0 when `memory` is set and this is not). */
  readonly memorySwap?: number;
  /** Disk bandwidth: throttles on one device, or a proportional weight. */
  readonly io?: IoLimits;
  /** Most processes and threads the job may have at once; `pids.max`. */
  readonly pids?: number;
}

/**
 * IO limits: either throttles (bytes or operations per second, on `device`, by default the
 * block device holding the job's working directory) or a `weight` (1 to 10000), never both.
 */
export interface IoLimits {
  readonly readBps?: number;
  readonly writeBps?: number;
  readonly readIops?: number;
  readonly writeIops?: number;
  /** A block device path (`/dev/vda`); a partition is throttled on its whole disk. */
  readonly device?: string;
  readonly weight?: number;
}

/**
 * What a job used, read from its cgroups: at its end (stored) and, while it runs, live. A figure
 * the host's cgroups do not measure for the job is null.
 */
export interface JobUsage {
  /** CPU time of all its processes, user and system. */
  readonly cpuSeconds: number | null;
  /** Time its processes were held back by its CPU quota. */
  readonly cpuThrottledSeconds: number | null;
  /** The most memory it held at once (page cache included, as the kernel charges it). */
  readonly memoryPeakBytes: number | null;
  readonly ioReadBytes: number | null;
  readonly ioWriteBytes: number | null;
  /** Processes the OOM killer ended because of its memory limit. */
  readonly oomKills: number;
  /** Forks refused because it was at its pids limit. */
  readonly pidsLimitHits: number;
}

/**
 * Linux namespaces a job runs in (docs/isolation.md, "Namespaces"). A field left out is the
 * host's: no PID namespace, the host's network, mounts and host name.
 */
export interface JobIsolation {
  /** Its own PID namespace: the job sees only its own processes (`ps ax`), under a small pid 1. */
  readonly pid?: boolean;
  /** `none`: a network namespace with only a loopback of its own; `host` (default): the host's. */
  readonly network?: 'none' | 'host';
  /** Its own mount namespace, with these changes to what it sees of the host's files. */
  readonly mount?: JobMountIsolation;
  /** Its own UTS namespace with this host name. */
  readonly hostname?: string;
}

/** What an isolated job sees of the host's files. */
export interface JobMountIsolation {
  /** An empty tmpfs of its own on /tmp and /var/tmp, gone when the job ends. */
  readonly privateTmp?: boolean;
  /** Absolute paths the job can read but not write. */
  readonly readOnly?: readonly string[];
  /** Absolute paths whose content the job cannot see (an empty directory, or an empty file). */
  readonly hide?: readonly string[];
}

/** What to run: the validated, normalized form (see `normalizeSpec`). */
export interface JobSpec {
  /** The program to execute (looked up in the job's PATH), or a shell script when `shell` is true. */
  readonly command: string;
  /** Arguments passed as-is, without shell interpretation. */
  readonly args: readonly string[];
  /** When true, `command` is run by `/bin/sh -c` and `args` become `$1`, `$2`, ... */
  readonly shell: boolean;
  /** The job's whole environment besides a small baseline (PATH, HOME, LANG); the server's own is never inherited. */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute working directory. */
  readonly cwd: string;
  /** The job is ended as `timed_out` after this many milliseconds of running; null for no limit. */
  readonly timeoutMs: number | null;
  /** A human name for lists and filters. */
  readonly name: string | null;
  /** Free-form key/value labels for filtering. */
  readonly labels: Readonly<Record<string, string>>;
  /** cgroup resource limits. */
  readonly limits: JobLimits;
  /** Namespaces the job runs in; absent (jobs before isolation existed) or `{}`: none. */
  readonly isolation?: JobIsolation;
  /** The queue the job waits in (`default` unless named). */
  readonly queue: string;
  /** Higher starts first within its queue; then first come, first served. -1000 to 1000, default 0. */
  readonly priority: number;
  /** Jobs that must all succeed (their last attempt) before this one starts. */
  readonly after: readonly string[];
  /** Run again after a `failed` or `timed_out` run; null for never. */
  readonly retry: RetryPolicy | null;
  /** At most one job with this key is queued or running at a time in its scope; null for none. */
  readonly dedupeKey: string | null;
  /**
   * The user among whose jobs `dedupeKey` is unique, when an admin named one; null for the owner's
   * own (the default). See `dedupeScopeOf`.
   */
  readonly dedupeScope: string | null;
  /**
   * The OS account the job's processes run as, resolved when it was submitted (docs/security.md);
   * null for the server's own account (a job of a program that embeds the engine).
   */
  readonly account: JobAccount | null;
  /**
   * The job's own webhook (docs/webhooks.md): where its events are POSTed. Absent when the spec
   * named none (and on jobs stored before webhooks existed).
   */
  readonly notify?: JobNotify;
  /**
   * The named task this job runs and the parameters it was started with (docs/tasks.md, "Named
   * tasks"); null for a plain job. Set by the server, never by a submitted spec.
   */
  readonly task: JobTaskRun | null;
}

/** A run of a named task: the task's name and its validated parameters (defaults filled in). */
export interface JobTaskRun {
  readonly name: string;
  readonly params: Readonly<Record<string, string | number | boolean>>;
}

/** How far a job says it is, from the last valid line it wrote to `JOBWORKER_PROGRESS`. */
export interface JobProgress {
  /** Units done so far. */
  readonly done: number;
  /** Units in all, when the job knows; null otherwise. */
  readonly total: number | null;
  /** A human line about the current step; null for none. */
  readonly message: string | null;
  /** When the server read it. */
  readonly at: Date;
}

/**
 * An OS account a job runs as: a configured account from the host's passwd, `root` for an admin
 * who asked for it, or one the server allocated from its pool of unused uids.
 */
export interface JobAccount {
  /** The account's name (`alice`, `root`), or `jw-<user>` for a pool account with no passwd entry. */
  readonly name: string;
  readonly uid: number;
  /** The primary group id. */
  readonly gid: number;
  /** Supplementary group ids, the primary one included (setgroups). */
  readonly groups: readonly number[];
  /** The job's HOME and its default working directory. */
  readonly home: string;
  /** The login shell from passwd, when the account has an entry. */
  readonly shell?: string;
}

/**
 * An account that does not exist yet: a user's pool account before its first job. Its uid is
 * allocated for good and its home made only by `make`, which the engine calls once a submission
 * passed every check of its spec and a preview of its admission (`JobStore.previewAdmission`), so
 * that a refused submit leaves no allocation and no home behind.
 * Until then the checks see it as a new uid is: an account that owns no file and is in no group,
 * whose home is an empty directory of its own.
 */
export interface PendingAccount {
  readonly name: string;
  /** The home it will have: the job's default working directory. */
  readonly home: string;
  /** Allocates the account and makes its home; the same account on every call. */
  make(): Promise<JobAccount>;
}

/** When and how often a failed run is tried again. */
export interface RetryPolicy {
  /** Runs in all, the first included (2 = one retry). */
  readonly attempts: number;
  /** The wait before attempt k+1 is `min(maxMs, initialMs * factor^(k-1))`. */
  readonly backoff: { readonly initialMs: number; readonly factor: number; readonly maxMs: number };
}

/**
 * Why a queued job is not running yet, as stored. `after`: a dependency has not succeeded yet;
 * `delay`: its `runAt` has not come; `starting`: a node has claimed it and is spawning it;
 * null: it waits only for a free slot in its queue.
 */
export type JobHold = 'after' | 'delay' | 'starting' | null;

/** Where the job's processes are, recorded when it starts so a later server can find and verify them. */
export interface ProcessIdentity {
  /** Pid of the job's own main process (the command itself), which is also its process group id. */
  readonly pid: number;
  /** Start time of that pid in clock ticks since boot (/proc/PID/stat field 22): with bootId it tells a reused pid apart. */
  readonly startTicks: number;
  /** The kernel boot id at start: after a reboot no pid can be ours. */
  readonly bootId: string;
  /** The job's cgroup directories (empty when the host gives none). */
  readonly cgroups: readonly string[];
  /**
   * The job's wrapper: the parent that waits for the main process and records its exit status.
   * Absent on jobs started by a server from before the native spawner (their `pid` is the
   * wrapper's own, which led their process group).
   */
  readonly wrapper?: WrapperIdentity;
}

/** Who the wrapper of a job is: pid and start time (same boot as the job). */
export interface WrapperIdentity {
  readonly pid: number;
  readonly startTicks: number;
}

/** How a job ended, as recorded when it reached a final status. */
export interface JobExit {
  /** The main process's exit code, or null when it was killed by a signal or never ran. */
  readonly exitCode: number | null;
  /** The signal that killed the main process (`SIGKILL`), or null. */
  readonly signal: string | null;
  /** One human line: "exited with code 3", "killed by SIGKILL after 10 s grace", "command not found: foo". */
  readonly reason: string;
}

/**
 * Who asks for the stop of a job past its timeout (`StopRequest.by`). Not a user name (they never
 * hold parentheses), so that a user named `timeout` stopping a job is told apart from it. Records
 * written before this marker say `timeout`: a job whose timeout stop was under way across an
 * upgrade ends `stopped` "by timeout" instead of `timed_out`.
 */
export const TIMEOUT_STOPPER = '(timeout)';

/** A stop that was asked for, recorded at once and kept in history. */
export interface StopRequest {
  readonly at: Date;
  /** Who asked: a user name, or `TIMEOUT_STOPPER`. */
  readonly by: string;
  readonly graceMs: number;
  /**
   * A user who asked for a stop while this one was the timeout's (`by` is `TIMEOUT_STOPPER`): the
   * run still ends as its timeout decides, and is not retried, someone having asked it to stop.
   * Kept in the store (not only by the node that runs the job), so that a restart during the
   * grace, a node declared lost meanwhile, or a stop recorded by another node all honour it.
   */
  readonly alsoBy?: string;
}

/** One job as stored and as every layer sees it. */
export interface Job {
  /** Time-sortable UUIDv7. */
  readonly id: string;
  readonly spec: JobSpec;
  readonly status: JobStatus;
  readonly owner: string;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  /** Set once when a stop is requested; the job is `stopped` only when its processes are gone. */
  readonly stop: StopRequest | null;
  /** True when a stop or timeout had to kill processes that outlived the grace period. */
  readonly stopForced: boolean;
  readonly process: ProcessIdentity | null;
  /** Set when the job reached a final status. */
  readonly exit: JobExit | null;
  /** The node that ran the job. */
  readonly node: string;
  /** Bytes written per stream (logical size, including any dropped by retention); final once the job finished. */
  readonly outputBytes: OutputBytes;
  /** Not started before this time (from `runAt` or `delayMs`, or a retry's backoff); null for as soon as possible. */
  readonly runAt: Date | null;
  /** What a queued job waits for besides a slot; null otherwise. */
  readonly hold: JobHold;
  /** 1 for a first run; k for the k-th attempt of a job with a retry policy. */
  readonly attempt: number;
  /** The previous attempt's id, on a retry. */
  readonly retryOf: string | null;
  /** The next attempt's id, once this one failed and was retried. */
  readonly retriedAs: string | null;
  /** Set while the job is `paused`. */
  readonly pausedAt: Date | null;
  /** What its processes used (their cgroups' counters); null before it started or where not measured. */
  readonly usage: JobUsage | null;
  /**
   * Why the value the job wrote to `JOBWORKER_RESULT` was not kept (too large, not JSON, not a
   * regular file); null when it was kept or none was written. The value itself is read apart
   * (`JobStore.getResult`): it may be up to 1 MiB.
   */
  readonly resultError: string | null;
  /** The latest progress the job reported; null when it reported none. */
  readonly progress: JobProgress | null;
}

export interface OutputBytes {
  readonly stdout: number;
  readonly stderr: number;
}

/** Statuses from which a job never moves again. */
export function isFinal(status: JobStatus): boolean {
  return status !== 'queued' && status !== 'running' && status !== 'paused';
}

/** Running or paused: the job has live processes on its node and holds a slot of its queue. */
export function isActive(status: JobStatus): boolean {
  return status === 'running' || status === 'paused';
}

/**
 * The scope of a job's dedupe key: the user among whose queued or running jobs it is unique
 * (its owner unless an admin named another), or null for a job without a key. Keys never clash
 * across users, so nobody can take, or learn of, another user's key.
 */
export function dedupeScopeOf(job: Pick<Job, 'spec' | 'owner'>): string | null {
  if (job.spec.dedupeKey === null) return null;
  return job.spec.dedupeScope ?? job.owner;
}
