import { createHash } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { join, normalize, resolve } from 'node:path';
import { type Clock, systemClock } from '../core/clock.ts';
import type { Job, JobIsolation } from '../core/job.ts';
import { type LimitSettings, NO_LIMIT_SETTINGS } from '../core/limits.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { CgroupOptions } from '../runtime/cgroups.ts';
import type { HostCapabilities } from '../runtime/host-capabilities.ts';
import { DEFAULT_SPAWN_TIMEOUT_MS } from '../runtime/spawner-client.ts';
import type { JobStore } from '../store/job-store.ts';

export interface EngineOptions {
  /** Where job directories live (`<dataDir>/jobs/<id>`). */
  readonly dataDir: string;
  readonly store: JobStore;
  /**
   * Where each job gets a directory of its own, owned by its account, for the result and progress
   * it may leave (`JOBWORKER_RESULT`, `JOBWORKER_PROGRESS`; docs/tasks.md). Outside the data
   * directory, which no job may enter. Default: `<tmpdir>/jobworker-io-<hash of dataDir>`.
   */
  readonly ioDir?: string;
  /** This node's name, recorded on every job it runs. Default: the host name. */
  readonly node?: string;
  /** Newest bytes kept per stream of each job; older ones are freed. Default 1 GiB. */
  readonly outputCapBytes?: number;
  /** Grace between SIGTERM and SIGKILL when a stop names none. Default 10 s. */
  readonly defaultGraceMs?: number;
  /** How often jobs adopted from an earlier server are checked for exit. Default 250 ms. */
  readonly adoptedCheckMs?: number;
  readonly cgroups?: CgroupOptions;
  /**
   * What this host can give a job (namespaces, cgroup controllers): a job asking for more is
   * refused at submit. Default: probed when the engine opens (`probeHost`).
   */
  readonly host?: HostCapabilities;
  /**
   * The isolation of a job whose spec, queue and user name none (`serve --default-isolation`);
   * null for none (the host's namespaces). Default null.
   */
  readonly defaultIsolation?: JobIsolation | null;
  readonly logger?: Logger;
  /** The clock; tests inject one. Default: `clock.now`. */
  readonly now?: () => Date;
  /** Time and timers for scheduling (delays, retry backoff); tests inject a manual clock. */
  readonly clock?: Clock;
  /**
   * How long the spawner may take to start one job (ms), up to its exec, before the start is
   * given up: its wrapper and process are killed, before its command began, and the job is
   * recorded failed to start ("its start did not finish in time"). It bounds a start that hangs,
   * the job's working directory or command on a hung NFS or FUSE mount say, which would otherwise
   * hold up the recording of every later start on this node (they are recorded in claim order)
   * and the engine's close. Default 30 s.
   */
  readonly spawnTimeoutMs?: number;
  /** Most jobs claimed from one queue in one dispatch pass. Default 64. */
  readonly dispatchBatch?: number;
  /**
   * Most jobs this node runs at once, all queues together (running, paused or being started);
   * more wait in their queues. It keeps a flood of submissions from exhausting the host's
   * processes. Default 10,000.
   */
  readonly maxRunning?: number;
  /**
   * Most queues the store may hold when a submission names a queue that does not exist yet: past
   * it, such a submission is refused (`VALIDATION_FAILED` on `queue`; docs/queues.md, "How many
   * queues"). Queues an admin creates with their settings are not limited. null for no limit, the
   * default: an embedding program names its own queues. `jobworker serve --max-queues` sets it
   * (default 1,000 there).
   */
  readonly maxQueues?: number | null;
  /**
   * The timeout of a job whose spec sets none (`timeoutMs` left out), recorded on its spec so that
   * status shows it; null for none. Default null. `jobworker serve --default-timeout` sets it.
   */
  readonly defaultTimeoutMs?: number | null;
  /**
   * Most finished jobs kept, the newest by when they finished; older ones are deleted with their
   * output. 0 keeps none; null, any number. Default 100,000.
   */
  readonly keepJobs?: number | null;
  /**
   * How long a finished job is kept after it finished (ms); 0 deletes it at the next pass; null
   * keeps it forever. Default 30 days. A job is deleted when either limit says so.
   */
  readonly keepForMs?: number | null;
  /** Time between two retention passes (on `clock`). Default 5 minutes. */
  readonly retentionIntervalMs?: number;
  /** Jobs deleted per retention transaction. Default 1,000. */
  readonly retentionBatch?: number;
  /**
   * The server's limit defaults and maxima, the last to apply after the queue's and the user's
   * (docs/isolation.md). Default none. `jobworker serve --default-limits` sets the defaults.
   */
  readonly limits?: LimitSettings;
  /**
   * For a node of a cluster: checks, before a claimed job is spawned, that the account it was
   * admitted with (on whichever node took it) is the same account on this host
   * (`JobAccounts.checkOnThisHost`); a throw fails the start with its message, but for
   * `STORE_UNAVAILABLE` (the store could not be read): the claim then goes back to its queue,
   * to be claimed again a second later. Default none: a server of its own admits and runs its
   * jobs on one host.
   */
  readonly checkAccount?: (job: Job) => Promise<void>;
}

export type ResolvedEngineOptions = Required<Omit<EngineOptions, 'cgroups' | 'host' | 'checkAccount'>> & {
  cgroups: CgroupOptions;
  host?: HostCapabilities;
  checkAccount?: (job: Job) => Promise<void>;
};

export const ENGINE_DEFAULTS = {
  outputCapBytes: 1024 ** 3,
  defaultGraceMs: 10_000,
  adoptedCheckMs: 250,
  spawnTimeoutMs: DEFAULT_SPAWN_TIMEOUT_MS,
  dispatchBatch: 64,
  maxRunning: 10_000,
  maxQueues: null,
  defaultTimeoutMs: null,
  defaultIsolation: null,
  keepJobs: 100_000,
  keepForMs: 30 * 24 * 3600 * 1000,
  retentionIntervalMs: 5 * 60 * 1000,
  retentionBatch: 1000,
  limits: NO_LIMIT_SETTINGS,
} as const satisfies Partial<EngineOptions>;

export function resolveEngineOptions(options: EngineOptions): ResolvedEngineOptions {
  const clock = options.clock ?? (options.now ? { ...systemClock, now: options.now } : systemClock);
  return {
    node: hostname(),
    logger: silentLogger,
    cgroups: {},
    ...ENGINE_DEFAULTS,
    ...options,
    // Normalized once: the paths of every job are made from it by concatenation (childPath).
    ioDir: normalize(options.ioDir ?? defaultIoDir(options.dataDir)),
    clock,
    now: options.now ?? (() => clock.now()),
  };
}

/** One io directory per data directory, stable across restarts (adopted jobs keep their paths). */
function defaultIoDir(dataDir: string): string {
  const hash = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16);
  return join(tmpdir(), `jobworker-io-${hash}`);
}
