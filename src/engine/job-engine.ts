import { EventEmitter, once } from 'node:events';
import { mkdir, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { childPath } from '../core/child-path.ts';
import { clockDeadline } from '../core/clock.ts';
import { DuplicateJobError, IllegalTransitionError, JobworkerError, NotFoundError } from '../core/errors.ts';
import { checkGraceMs } from '../core/grace.ts';
import { isJobId, newJobId } from '../core/ids.ts';
import { isIsolated, mergeIsolation } from '../core/isolation.ts';
import {
  isActive,
  isFinal,
  type Job,
  type JobAccount,
  type JobIsolation,
  type JobSpec,
  type JobTaskRun,
  type PendingAccount,
} from '../core/job.ts';
import { type LimitSettings, NO_LIMIT_SETTINGS, resolveLimits } from '../core/limits.ts';
import { type LinkedSignal, linkSignals, unboundedController } from '../core/linked-signal.ts';
import { queuedJob } from '../core/queued-job.ts';
import { cancelledBeforeStart } from '../core/states.ts';
import { normalizeSubmission } from '../core/submission.ts';
import { loadBatchSizes } from '../output/batch-sizes.ts';
import { DEFAULT_BATCH_BYTES, followOutput } from '../output/output-follower.ts';
import { OutputMonitor, RETENTION_SPARE_FILE } from '../output/output-monitor.ts';
import { type OutputRead, OutputReader, readOutput } from '../output/output-reader.ts';
import type { OutputEvent, OutputSelector } from '../output/output-types.ts';
import { Cgroups } from '../runtime/cgroups.ts';
import { type DataDirLock, lockIoDir } from '../runtime/data-dir-lock.ts';
import { checkIsolation, type HostCapabilities, probeHost } from '../runtime/host-capabilities.ts';
import { jobEnvironment } from '../runtime/job-environment.ts';
import { ioDirOwner, type JobIoPaths, jobIoPaths, prepareIoDir, removeJobIo } from '../runtime/job-io.ts';
import { preflight, unmadeAccount } from '../runtime/preflight.ts';
import { isSameProcessAlive } from '../runtime/process-identity.ts';
import { SpawnerClient } from '../runtime/spawner-client.ts';
import { spawnerPath } from '../runtime/spawner-path.ts';
import { endUnsupervised } from '../runtime/stop-processes.ts';
import type { JobListQuery, JobPage, JobStore, QueueSettings, QueueState } from '../store/job-store.ts';
import { AdoptedExitWatch } from './adopted-exit-watch.ts';
import { Dispatcher } from './dispatcher.ts';
import type { EngineEvents } from './engine-events.ts';
import { type EngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './engine-options.ts';
import { HistoryRetention } from './history-retention.ts';
import { JobListeners } from './job-listeners.ts';
import { Launcher } from './launcher.ts';
import { ProgressWatcher } from './progress-watcher.ts';
import { Supervisor } from './supervisor.ts';
import { takeOverJobs } from './take-over-jobs.ts';
import { untilWritten } from './until-written.ts';

/** Who is asking: recorded on the job and on its stop. */
export interface Caller {
  readonly user: string;
  /**
   * The OS account a submitted job runs as (the service picks it: docs/security.md); absent, the
   * server's own account, as for a program that embeds the engine. A pending one (a user's first
   * pool account) is made only once the submission passed every check of its spec.
   */
  readonly account?: JobAccount | PendingAccount;
  /** The caller's own limit defaults and maxima (set by an admin); absent: none. */
  readonly limits?: LimitSettings;
  /** The caller's own default isolation (the user's, `user set --isolation`): after the queue's. */
  readonly defaultIsolation?: JobIsolation | null;
  /**
   * Isolation every job of this caller gets whatever it asks (`serve --force-isolation` for
   * non-admins): added to what its spec or the defaults give (docs/isolation.md, "Policy").
   */
  readonly forcedIsolation?: JobIsolation | null;
  /** The named task the job runs, with its validated parameters (the service's task runs). */
  readonly task?: JobTaskRun;
}

export interface StopOptions {
  /** Time between SIGTERM and SIGKILL; the engine default when absent. */
  readonly graceMs?: number;
}

/** Whether this node dispatches, and how many jobs it runs now. */
export interface DrainState {
  readonly draining: boolean;
  readonly running: number;
}

export interface StopResponse {
  readonly job: Job;
  /** False when the job had already finished (or was already stopping): nothing changed. */
  readonly changed: boolean;
}

export interface ReadOptions {
  readonly selector: OutputSelector;
  readonly cursor: number;
  readonly limitBytes: number;
}

export interface FollowOptions {
  readonly selector: OutputSelector;
  readonly cursor: number;
  readonly signal?: AbortSignal;
  /**
   * Also yield `progress` events: the job each time it reports progress (and first its latest,
   * when it has one). Off by default, for followers that show only output.
   */
  readonly progress?: boolean;
  /**
   * The job as its caller looked it up a moment ago (`getRecorded`): the follow starts from it
   * instead of reading the record again. A queued one is waited for as without it.
   */
  readonly recorded?: Job;
}

/** How `viewEnd` checks a view. */
export interface ViewEndOptions {
  /** The caller follows the view from the cursor next (see `viewEnd`). */
  readonly follow?: boolean;
  /** The job as its caller looked it up a moment ago: not read again. */
  readonly recorded?: Job;
}

/** What a submission did: created a job, or found the queued or running one with its dedupe key. */
export interface SubmitResult {
  readonly job: Job;
  readonly created: boolean;
}

/** What a follower receives: output batches, then exactly one `end` with the final job. */
export type FollowEvent =
  | {
      readonly type: 'output';
      readonly events: OutputEvent[];
      /**
       * Present when the events' bytes lie in a pooled page (a read to the end): call it once
       * nothing reads those bytes any more (they went to the socket) so that the page is reused.
       * Not calling it is safe (the page is collected); using the bytes after it is not.
       */
      readonly release?: () => void;
    }
  /** Only with `progress: true`: the job, carrying the progress it just reported. */
  | { readonly type: 'progress'; readonly job: Job }
  | { readonly type: 'end'; readonly job: Job };

/**
 * The job engine: runs commands as durable jobs and answers for them. It ties the runtime
 * (spawn, stop, reattach), the output files and the store together; the service layer and
 * every adapter call it. Jobs outlive the engine: `close()` leaves them running and the
 * next `JobEngine.open` on the same data directory and store adopts them.
 */
export class JobEngine extends EventEmitter<EngineEvents> {
  readonly #options: ResolvedEngineOptions;
  /** `<dataDir>/jobs`, normalized: every job's directory is made from it (childPath). */
  readonly #jobsDir: string;
  readonly #store: JobStore;
  readonly #monitor: OutputMonitor;
  readonly #cgroups: Cgroups;
  readonly #supervisor: Supervisor;
  readonly #dispatcher: Dispatcher;
  readonly #spawner: SpawnerClient;
  #host: HostCapabilities | undefined;
  readonly #launcher: Launcher;
  readonly #retention: HistoryRetention;
  /**
   * Claimed jobs being spawned right now, until supervised: they hold a slot, and a stop or a
   * pause that comes meanwhile waits for the launch to end rather than miss the job.
   */
  readonly #launches = new Map<string, Promise<void>>();
  #ioSwept: Promise<void> = Promise.resolve();
  /** The claim on the io directory (`lockIoDir`), let go at the close. */
  #ioLock: DataDirLock | undefined;
  /** Settles once `endUnrecordedRuns` (called once, at a cluster node's start) has. */
  #runsEnded: Promise<void> = Promise.resolve();
  /** Who waits for the next start or end of a job, by job id. */
  readonly #waiters = new Map<string, Set<() => void>>();
  /**
   * Aborted by `close`: a `waitFor` still waiting then rejects, where it would wait for ever.
   * Every wait listens to it (no bound on their number: no leak warning).
   */
  readonly #closing = unboundedController();
  /**
   * Told whenever what this node runs may have shrunk: a job ended, or a launch was let go (a job
   * that failed to start is reported finished while its launch still holds its slot).
   */
  readonly #slots = new EventEmitter<{ change: [] }>();
  /** Followers told of their own job's progress (`follow` with `progress`). */
  readonly #progressListeners = new JobListeners<Job>();
  /** Ends the store's telling of the queues it forgot (`queue:forgotten`), at the close. */
  readonly #stopForgetting: () => void;

  private constructor(options: ResolvedEngineOptions) {
    super();
    this.on('job:started', (job) => this.#wake(job));
    this.on('job:finished', (job) => {
      this.#wake(job);
      this.#slots.emit('change');
    });
    this.#options = options;
    this.#jobsDir = join(options.dataDir, 'jobs');
    this.#store = options.store;
    this.#stopForgetting = this.#store.onQueuesForgotten((names) => this.emit('queue:forgotten', names));
    this.#cgroups = new Cgroups(options.cgroups);
    // The sweep's stats off the event loop; without the addon, on it (slower with thousands running).
    const sizes = loadBatchSizes();
    if ('reason' in sizes)
      options.logger.info({ reason: sizes.reason }, 'the output sweep stats files on the event loop');
    this.#monitor = new OutputMonitor({
      capBytes: options.outputCapBytes,
      // Above the jobs' directories, on their filesystem (what it frees is room there), and out of
      // their listing.
      spareFile: join(options.dataDir, RETENTION_SPARE_FILE),
      onError: (err, jobId) => options.logger.warn({ err, jobId }, 'output monitoring failed'),
      onTruncated: ({ jobId, stream, at, fileBytes }) =>
        options.logger.warn(
          { jobId, stream, at, fileBytes },
          `job ${jobId} truncated its own ${stream} at byte ${at} (with > or tee, not >> or tee -a): the bytes it still held are lost, readers see them as truncated`,
        ),
      clock: options.clock,
      ...('batchSizes' in sizes ? { batchSizes: sizes.batchSizes } : {}),
    });
    this.#spawner = new SpawnerClient({
      path: spawnerPath(),
      log: (line) => options.logger.warn({ spawner: true }, line),
      cpuGroup: this.#cgroups.cpuGroupProcs,
      spawnTimeoutMs: options.spawnTimeoutMs,
    });
    this.#supervisor = new Supervisor({
      store: this.#store,
      cgroups: this.#cgroups,
      monitor: this.#monitor,
      adopted: new AdoptedExitWatch(options.adoptedCheckMs),
      now: options.now,
      clock: options.clock,
      defaultGraceMs: options.defaultGraceMs,
      jobDir: (id) => this.#jobDir(id),
      ioPaths: (id) => this.ioPaths(id),
      remover: this.#spawner,
      progress: new ProgressWatcher({
        store: this.#store,
        clock: options.clock,
        paths: (id) => this.ioPaths(id),
        changed: (job) => {
          this.#progressListeners.notify(job.id, job);
          this.emit('job:progress', job);
        },
        onError: (err, jobId) => options.logger.warn({ err, jobId }, 'progress could not be read'),
      }),
      emit: (event, job) => {
        this.emit(event, job);
        if (event === 'job:finished') this.#afterFinish(job);
      },
      onError: (err, jobId) => {
        options.logger.error({ err, jobId }, 'job supervision failed');
        this.emit('engine:error', err, jobId);
      },
    });
    this.#launcher = new Launcher({
      clock: options.clock,
      store: this.#store,
      cgroups: this.#cgroups,
      supervisor: this.#supervisor,
      spawner: this.#spawner,
      node: options.node,
      jobDir: (id) => this.#jobDir(id),
      ioPaths: (id) => this.ioPaths(id),
      ...(options.checkAccount ? { checkAccount: options.checkAccount } : {}),
      changed: (job) => this.#changed(job),
      claimLost: (job, err) =>
        options.logger.warn(
          { jobId: job.id, err },
          'a claim of this node went back to its queue while it was cut off; nothing was recorded, and what it had spawned or made was ended',
        ),
      gaveBack: (job, err) => {
        options.logger.warn(
          { jobId: job.id, err },
          'a job could not be started as the store could not be read; it went back to its queue',
        );
        this.#dispatcher.retrySoon();
      },
      closing: this.#closing.signal,
      onError: (err, jobId) => {
        options.logger.error({ err, jobId }, 'launching a job went wrong');
        this.emit('engine:error', err, jobId);
      },
    });
    this.#dispatcher = new Dispatcher({
      store: this.#store,
      node: options.node,
      clock: options.clock,
      batch: options.dispatchBatch,
      nodeFree: () => options.maxRunning - this.#supervisor.size - this.#launches.size,
      launchAll: (jobs) => this.#launchAll(jobs),
      releaseClaim: (id) => this.#launcher.releaseClaim(id),
      onError: (err) => {
        options.logger.error({ err }, 'dispatch failed');
        this.emit('engine:error', err, null);
      },
    });
    this.#retention = new HistoryRetention({
      store: this.#store,
      clock: options.clock,
      keepJobs: options.keepJobs,
      keepForMs: options.keepForMs,
      intervalMs: options.retentionIntervalMs,
      batch: options.retentionBatch,
      jobDir: (id) => this.#jobDir(id),
      endDeletedRun: (id) => this.#launcher.endDeletedRun(id),
      node: options.node,
      onPass: (deleted) => {
        if (deleted > 0) options.logger.info({ deleted }, 'retention deleted finished jobs');
        this.emit('history:pruned', deleted);
      },
      onError: (err) => {
        options.logger.error({ err }, 'retention failed');
        this.emit('engine:error', err, null);
      },
    });
  }

  /**
   * Opens the engine and reconciles every job this node left running (adopt, or record how it
   * ended); on a store only it uses, those left under another node id too (`takeOverJobs`).
   */
  static async open(options: EngineOptions): Promise<JobEngine> {
    const resolved = resolveEngineOptions(options);
    // The default place may have been taken by another account first (its name is the data
    // directory's hash, in the temp directory): a fresh one beside it then, not a server that
    // cannot start. One the operator named is theirs to fix.
    const io = await prepareIoDir(resolved.ioDir, { elsewhere: options.ioDir === undefined });
    if (io.notUsed !== undefined) {
      resolved.logger.warn(
        { ioDir: io.dir, notUsed: resolved.ioDir },
        `${io.notUsed}: the jobs' io directories go to ${io.dir} instead`,
      );
    }
    // One the operator named may be named to another server too (a copied unit file), and the
    // default one named to another server as its own: claimed for this one's life.
    const ioLock = await lockIoDir(io.dir);
    let engine: JobEngine;
    try {
      engine = new JobEngine({ ...resolved, ioDir: io.dir });
    } catch (err) {
      await ioLock.release();
      throw err;
    }
    engine.#ioLock = ioLock;
    try {
      engine.#host = options.host ?? (await probeHost());
      await mkdir(join(engine.#options.dataDir, 'jobs'), { recursive: true, mode: 0o700 });
      // Made while the disk has room: what lets retention free it once jobs' output filled it.
      await engine.#monitor.prepareSpare();
      await takeOverJobs(engine.#store, engine.#options.node, engine.#options.logger);
      const running = await engine.#store.listRunning(engine.#options.node);
      await engine.#supervisor.recover(running);
      await engine.#launcher.recoverClaims();
      // Dependencies that ended while the last server was going down still settle their dependents.
      for (const job of await engine.#store.settleAll(engine.#options.now())) engine.#changed(job);
      engine.#options.logger.info(
        { node: engine.#options.node, cgroups: engine.#cgroups.mode, reconciled: running.length },
        'job engine open',
      );
      const realtime = engine.#cgroups.realtimeRefused;
      if (realtime)
        engine.#options.logger.warn(
          { cpuGroup: engine.#cgroups.cpuGroupProcs, reason: realtime },
          "the jobs' CPU group has no real-time time: a job asking for a real-time policy (chrt) is refused",
        );
      // Only now: see `Dispatcher.open`.
      await engine.#dispatcher.open();
      engine.#retention.start();
      engine.#ioSwept = engine
        .#sweepIoDirs()
        .catch((err: unknown) =>
          engine.#options.logger.warn(
            { err, ioDir: engine.#options.ioDir },
            'sweeping left io directories failed',
          ),
        );
      return engine;
    } catch (err) {
      // What recovery set up (adopted jobs' timers and watches, the spawner) must not outlive an
      // open that failed: a caller that opens again would have two engines supervise the jobs.
      await engine
        .close()
        .catch((closeErr: unknown) =>
          engine.#options.logger.error(
            { err: closeErr },
            'closing the job engine after a failed open failed',
          ),
        );
      throw err;
    }
  }

  /** This node's id: the `node` of the jobs it runs. */
  get node(): string {
    return this.#options.node;
  }

  /** What this host can give a job (probed when the engine opened, unless given). */
  get host(): HostCapabilities {
    if (!this.#host) throw new Error('The job engine is not open');
    return this.#host;
  }

  /** The spawner process: whether one runs now, and how many were started (metrics). */
  get spawner(): { readonly running: boolean; readonly launches: number } {
    return { running: this.#spawner.pid !== undefined, launches: this.#spawner.launches };
  }

  /** How this host contains jobs: `v2`, `v1` or `none` (process groups only). */
  get cgroupMode(): string {
    return this.#cgroups.mode;
  }

  /**
   * Validates the submission and admits the job to its queue, and resolves with the job as admitted
   * (`queued`, normally) once its row is committed: the dispatcher starts it by itself, so a
   * submission never waits behind the launches of a dispatch pass. Await `waitFor`, or the
   * `job:started` event, for its start. Bad input throws a `ValidationError` with nothing created;
   * a full queue a `QueueFullError`; a duplicate `dedupeKey` (in its scope, see `dedupeScopeOf`) a
   * `DuplicateJobError` carrying the job there is, unless `onDuplicate: 'return'`, which returns
   * that job. A job the OS refuses to start is recorded as `failed` when the dispatcher gets to it.
   */
  async start(input: unknown, caller: Caller): Promise<Job> {
    return (await this.submit(input, caller)).job;
  }

  /** Like `start`, and tells whether a job was created or an existing duplicate returned. */
  async submit(input: unknown, caller: Caller): Promise<SubmitResult> {
    const now = this.#options.now();
    const given = caller.account;
    const pending = given !== undefined && 'make' in given ? given : undefined;
    const submission = normalizeSubmission(input, {
      cwd: caller.account?.home ?? homedir(),
      timeoutMs: this.#options.defaultTimeoutMs,
      now,
    });
    const { runAt, onDuplicate } = submission;
    const queue = await this.#store.queueDefaults(submission.spec.queue);
    const limits = resolveLimits(submission.spec.limits, [
      { source: `queue \`${submission.spec.queue}\``, settings: queue.limits },
      { source: `user \`${caller.user}\``, settings: caller.limits ?? NO_LIMIT_SETTINGS },
      { source: 'the server', settings: this.#options.limits },
    ]);
    // The job's own isolation, else its queue's, else its user's, else the server's; plus what
    // the server forces on the caller. The job records what it got.
    const { isolation: own, ...rest } = submission.spec;
    const isolation = mergeIsolation(
      own ?? queue.isolation ?? caller.defaultIsolation ?? this.#options.defaultIsolation,
      caller.forcedIsolation,
    );
    let spec: JobSpec = {
      ...rest,
      limits,
      ...(isIsolated(isolation) ? { isolation } : {}),
      account: given === undefined ? null : 'make' in given ? unmadeAccount(given) : given,
      task: caller.task ?? null,
    };
    checkIsolation(spec.isolation, this.host);
    const id = newJobId(now.getTime());
    // The account's view of its paths first: the limits' checks look at `cwd` (the disk an IO
    // limit throttles) as the server, and would tell of a path the account may not reach.
    preflight(spec, jobEnvironment(spec, id), pending?.home);
    // A home not made yet is on the disk of the directory it will be made in.
    this.#cgroups.checkLimits(spec.limits, pending?.home === spec.cwd ? dirname(spec.cwd) : spec.cwd);
    const jobOf = (s: JobSpec) =>
      queuedJob({ id, spec: s, owner: caller.user, node: this.#options.node, createdAt: now, runAt });
    const admitting = { maxQueues: this.#options.maxQueues };
    if (pending) {
      // The account is kept for good once made (its name "used before": docs/security.md), so
      // the admission is tried first and rolled back: a refusal (its queue full, a new queue past
      // `--max-queues`, an `after` unknown) or a duplicate comes before anything is made. Only an
      // admission of another submission in between can still refuse the one below.
      const preview = await this.#store.previewAdmission(jobOf(spec), now, admitting);
      if (!preview.admitted) {
        if (onDuplicate === 'return') return { job: await this.get(preview.existing.id), created: false };
        throw new DuplicateJobError(preview.existing);
      }
      spec = { ...spec, account: await pending.make() };
      // With its real uid once more: one the pool gives may own files already (another server's
      // pool on this host), which the checks of an account that owns nothing could not see.
      preflight(spec, jobEnvironment(spec, id));
    }
    const admission = await this.#store.admitJob(jobOf(spec), now, admitting);
    if (!admission.admitted) {
      if (onDuplicate === 'return') return { job: await this.get(admission.existing.id), created: false };
      throw new DuplicateJobError(admission.existing);
    }
    this.emit('job:queued', admission.job);
    if (admission.job.status === 'cancelled') this.#changed(admission.job);
    else if (admission.job.hold === 'delay' && admission.job.runAt)
      this.#dispatcher.noteDue(admission.job.runAt);
    // Not awaited: the answer is the admitted row; the pass (and its launches) goes on by itself.
    else if (admission.job.hold === null) void this.#dispatcher.kick();
    return { job: admission.job, created: true };
  }

  /** Starts the jobs the dispatcher claimed together. Never rejects: what fails is recorded on the job. */
  #launchAll(jobs: readonly Job[]): Promise<void>[] {
    return this.#launcher.launchAll(jobs).map((launching, i) => {
      const job = jobs[i]!;
      const launched = launching.then(
        () => undefined,
        (err: unknown) => {
          this.#options.logger.error({ err, jobId: job.id }, 'job launch failed');
          this.emit('engine:error', err as Error, job.id);
        },
      );
      this.#launches.set(job.id, launched);
      return launched.finally(() => {
        this.#launches.delete(job.id);
        this.#slots.emit('change');
      });
    });
  }

  /** A job that ended without supervision (cancelled, settled): events and what follows. */
  #changed(job: Job): void {
    if (isFinal(job.status)) {
      this.emit('job:finished', job);
      this.#afterFinish(job);
    } else {
      void this.#dispatcher.kick();
    }
  }

  /** After any job ended: its dependents settle, and its slot goes to the next job. */
  #afterFinish(job: Job): void {
    const settle = async () => {
      if (job.retriedAs === null) {
        // Tried again while the store may heal (busy, away, its disk full): a dependent left
        // waiting on an end that nobody settles would wait until the next start of a server.
        const settled = await untilWritten(() => this.#store.settleDependents(job.id, this.#options.now()), {
          clock: this.#options.clock,
          signal: this.#closing.signal,
          onFirstFailure: (err) =>
            this.#options.logger.warn(
              { err, jobId: job.id },
              'settling the dependents of a job that ended failed; trying again',
            ),
        });
        for (const changed of settled ?? []) {
          if (isFinal(changed.status)) this.emit('job:finished', changed);
          if (changed.hold === 'delay') this.#dispatcher.forgetDue();
        }
      } else {
        this.#dispatcher.forgetDue(); // its next attempt waits for its backoff
      }
      await this.#dispatcher.kick();
    };
    settle().catch((err: Error) => {
      this.#options.logger.error({ err, jobId: job.id }, 'settling after a job failed');
      this.emit('engine:error', err, job.id);
    });
  }

  /**
   * Stops a job and everything it spawned. The request is recorded at once and the job
   * becomes `stopped` when its processes are gone (await `waitFor` for that). A stop on a
   * finished job changes nothing and says so (`changed: false`).
   */
  async stop(id: string, caller: Caller, options: StopOptions = {}): Promise<StopResponse> {
    const graceMs = this.#graceOf(options);
    // Set once this stop is on record on the claim of a launch here: what the launch made of it
    // (a cancel before the spawn, or a stop once started) is this stop's doing.
    let onClaim = false;
    // A job moves on between the looks below (claimed, started, finished by another stop):
    // each refusal means "look again", and a few looks always settle it.
    for (let attempt = 0; ; attempt++) {
      const launching = this.#launches.get(id);
      if (launching) {
        // Recorded on its claim before waiting: a launch not yet at its spawn never runs it.
        if (!onClaim)
          onClaim = (await this.#stopClaimed(await this.get(id), caller.user, graceMs))?.changed ?? false;
        await launching;
      }
      const stopping = await this.#supervisor.requestStop(id, caller.user, graceMs);
      if (stopping) return onClaim ? { ...stopping, changed: true } : stopping;
      const job = await this.get(id);
      if (job.status === 'queued' && attempt < 5) {
        const cancelled = await this.#stopClaimed(job, caller.user, graceMs);
        if (!cancelled) continue;
        return { ...cancelled, changed: cancelled.changed || onClaim };
      }
      if (isActive(job.status) && this.#launches.has(id) && attempt < 5) continue;
      // Finished (cancelled by its launch, told of this stop), or running but not supervised here:
      // another node's.
      return { job, changed: onClaim };
    }
  }

  /**
   * Records a stop of a queued or claimed job: a queued one is cancelled; on a claim (the job being
   * started) the stop is recorded only, for its launch to carry out: this node's launch is told, and
   * sends it to no spawner if it has not yet (`Launcher.stopBeforeSpawn`). Undefined when the job
   * started or ended meanwhile. `before`: the job as last read.
   */
  async #stopClaimed(before: Job, by: string, graceMs: number): Promise<StopResponse | undefined> {
    const { id } = before;
    const recorded = await this.#store
      .cancelQueued(id, { at: this.#options.now(), by, graceMs }, cancelledBeforeStart(by))
      .catch((err: unknown) => {
        if (err instanceof IllegalTransitionError) return undefined;
        throw err;
      });
    if (!recorded) return undefined;
    if (recorded.status === 'cancelled') this.#changed(recorded);
    else if (recorded.hold === 'starting' && recorded.node === this.#options.node) {
      this.#launcher.stopBeforeSpawn(id);
    }
    return {
      job: recorded,
      // By time: each read makes its own Date.
      changed: recorded.stop?.at.getTime() !== before.stop?.at.getTime() || recorded.status !== before.status,
    };
  }

  /**
   * Records a stop of a job that another node of a cluster runs, without reaching its processes:
   * for when that node cannot be reached. The first stop on record is kept (`markStopRequested`);
   * should that node then be declared lost, the job is not retried, a stopped job never being.
   * Resolves with the job as recorded.
   */
  async recordStop(id: string, caller: Caller, options: StopOptions = {}): Promise<Job> {
    const graceMs = this.#graceOf(options);
    return this.#store.markStopRequested(id, { at: this.#options.now(), by: caller.user, graceMs });
  }

  /** A stop's grace period: the one asked for, checked, else the engine's default. */
  #graceOf(options: StopOptions): number {
    checkGraceMs(options.graceMs);
    return options.graceMs ?? this.#options.defaultGraceMs;
  }

  /** Freezes a running job (see docs/queues.md); `IllegalTransitionError` when it is not running. */
  async pause(id: string): Promise<Job> {
    await this.#launches.get(id);
    const paused = await this.#supervisor.pause(id);
    if (paused) {
      this.emit('job:paused', paused);
      return paused;
    }
    const job = await this.get(id);
    throw new IllegalTransitionError(id, job.status, 'paused');
  }

  /** Thaws a paused job; `IllegalTransitionError` when it is not paused. */
  async resume(id: string): Promise<Job> {
    const resumed = await this.#supervisor.resume(id);
    if (resumed) {
      this.emit('job:resumed', resumed);
      return resumed;
    }
    const job = await this.get(id);
    throw new IllegalTransitionError(id, job.status, 'running');
  }

  /**
   * After this node was cut off from its cluster and declared lost (docs/cluster.md): every job it
   * still supervises that the store now records as ended (decided by another node), or no longer
   * has (decided, then deleted), is given up, its processes killed, nothing recorded. Returns the
   * jobs given up that the store still has. Every job is tried, whatever one of them throws; the
   * first throw then goes on once all were tried (the caller tries again later: a job given up
   * already is not supervised any more).
   */
  async relinquishDecided(): Promise<Job[]> {
    const given: Job[] = [];
    let failed: { error: unknown } | undefined;
    for (const id of this.#supervisor.ids()) {
      try {
        const stored = await this.#store.getJob(id);
        if (stored !== undefined && !isFinal(stored.status)) continue;
        if ((await this.#supervisor.relinquish(id, stored)) && stored) given.push(stored);
      } catch (error) {
        failed ??= { error };
      }
    }
    if (failed) throw failed.error;
    return given;
  }

  /**
   * Kills what is left of jobs this node ran that another node decided while this one was down
   * (a node restarted after it was declared lost): their processes may have outlived the server.
   * Only processes that are still the ones recorded (same pid and start time) are signalled.
   */
  async endLeftovers(jobs: readonly Job[]): Promise<number> {
    let ended = 0;
    for (const job of jobs) {
      if (job.process === null || job.node !== this.#options.node) continue;
      if (!isSameProcessAlive(job.process) && job.process.cgroups.length === 0) continue;
      await endUnsupervised(job.process, this.#cgroups, this.#options.clock);
      await this.#cgroups.removeAsync(job.process.cgroups).catch(() => undefined);
      ended++;
    }
    return ended;
  }

  /**
   * Ends the runs this node began and never recorded whose claims other nodes gave back while it
   * was lost (a server that died between a job's spawn and its recorded start, and came back too
   * late: docs/cluster.md). A node of a cluster calls it once open; it reads every job directory,
   * so a single server, whose claims no one else gives back, has no need of it. Returns the ids of
   * the jobs whose runs were ended; their jobs' records are left as they are.
   */
  endUnrecordedRuns(): Promise<string[]> {
    const ended = this.#launcher.endUnrecordedRuns(
      this.#jobsDir,
      (id) => this.#supervisor.finished(id) !== undefined || this.#launches.has(id),
      this.#closing.signal,
    );
    // Waited for at the close, with the sweep: it reads the store, which the caller closes next.
    this.#runsEnded = ended.then(
      () => undefined,
      () => undefined,
    );
    return ended;
  }

  /** Stops dispatching on this node; running jobs go on. */
  drain(): DrainState {
    const was = this.#dispatcher.draining;
    this.#dispatcher.drain();
    if (!was) this.emit('node:drain', true);
    return this.drainState;
  }

  undrain(): DrainState {
    const was = this.#dispatcher.draining;
    this.#dispatcher.undrain();
    if (was) this.emit('node:drain', false);
    return this.drainState;
  }

  get drainState(): DrainState {
    return { draining: this.#dispatcher.draining, running: this.#supervisor.size + this.#launches.size };
  }

  /** Resolves once this node runs no job (or `signal` aborts: then it rejects with its reason). */
  async drained(signal?: AbortSignal): Promise<DrainState> {
    while (this.drainState.running > 0) {
      signal?.throwIfAborted();
      await once(this.#slots, 'change', signal ? { signal } : {});
    }
    return this.drainState;
  }

  /** Runs a dispatch pass now; resolves once it has ended (what could start has started). */
  async dispatch(): Promise<void> {
    await this.#dispatcher.kick();
  }

  /**
   * Delayed jobs changed where this engine did not see it (another node of a cluster wrote them):
   * `at`, the time one now waits for, or undefined when that is not known (notifications were
   * lost). The dispatcher wakes by then, or asks the store at its next pass.
   */
  delayedElsewhere(at?: Date): void {
    if (at === undefined || Number.isNaN(at.getTime())) this.#dispatcher.forgetDue();
    else this.#dispatcher.noteDue(at);
  }

  /** Every queue with its settings and counts. */
  queues(): Promise<QueueState[]> {
    return this.#store.listQueues();
  }

  queue(name: string): Promise<QueueState> {
    return this.#store.getQueue(name);
  }

  /** Changes a queue's settings; a raised limit or a resume starts what may start now. */
  async setQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueState> {
    // A default the host cannot give would fail every job of the queue: refused now instead.
    if (settings.isolation) checkIsolation(settings.isolation, this.host);
    await this.#store.putQueue(name, settings);
    await this.#dispatcher.kick();
    return this.#store.getQueue(name);
  }

  /** The job (with live output sizes while it runs); throws NotFoundError. */
  async get(id: string): Promise<Job> {
    const job = await this.getRecorded(id);
    // Live figures, where its processes run on this node (its files and cgroups are here); those
    // of another node's job are that node's to read (`JobService.get` asks it).
    if (isActive(job.status) && job.node === this.#options.node) {
      const usage = job.process ? this.#cgroups.usage(job.process.cgroups) : job.usage;
      return { ...job, outputBytes: await this.#monitor.sizes(this.#jobDir(id)), usage };
    }
    return job;
  }

  /**
   * The job as its record says, without the live figures `get` adds while it runs (its output
   * sizes and cgroup usage so far, read from their files at every call): for a caller that needs
   * only its status, owner, node or progress, such as each of a thousand followers opening at once.
   * Throws NotFoundError.
   */
  async getRecorded(id: string): Promise<Job> {
    const job = isJobId(id) ? await this.#store.getJob(id) : undefined;
    if (!job) throw new NotFoundError(id);
    return job;
  }

  list(query: JobListQuery): Promise<JobPage> {
    return this.#store.listJobs(query);
  }

  /**
   * Resolves with the job once it has reached a final status, waiting through its time in the
   * queue. A job active on another node resolves as it is. Rejects with `signal`'s reason, with
   * an `ILLEGAL_TRANSITION` error when the engine is closed first, and with NotFoundError when the
   * job is deleted (one this node gave up to another node's decision, say).
   */
  async waitFor(id: string, signal?: AbortSignal): Promise<Job> {
    // The engine's close ends the wait too: nothing would tell of the job's end after it (the job
    // runs on, and a later engine on the same data directory adopts it).
    const stop = this.#untilClosed(signal);
    try {
      const job = await this.untilStarted(id, stop.signal);
      if (isFinal(job.status)) return job;
      // Started, perhaps not yet supervised: the launch ends once it is.
      await untilAborted(this.#launches.get(id) ?? Promise.resolve(), stop.signal);
      // Closed meanwhile: the supervisor let go of the job, and its record says it runs.
      stop.signal.throwIfAborted();
      const finished = this.#supervisor.finished(id);
      const ended = finished ? await untilAborted(finished, stop.signal) : undefined;
      if (ended && isFinal(ended.status)) return ended;
      // No end of this node's own: the job was given up to another node's decision (and perhaps
      // deleted since, then NOT_FOUND), or was never supervised here. Its record tells.
      stop.signal.throwIfAborted();
      return await this.get(id);
    } catch (err) {
      throw this.#closedOr(err, id, signal);
    } finally {
      stop.dispose();
    }
  }

  /**
   * `signal` and the engine's close as one signal, whose listeners go with `dispose` (linked by
   * hand: `linkSignals`, not `AbortSignal.any`, which keeps memory for each signal it makes with
   * the long-lived close among its sources).
   */
  #untilClosed(signal: AbortSignal | undefined): LinkedSignal {
    return linkSignals([signal, this.#closing.signal]);
  }

  /**
   * What a wait or a follow that failed throws: the caller's own abort, or an error that did not
   * come from the close, as it is; else (the engine closed under it) an error that says so.
   */
  #closedOr(err: unknown, id: string, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted || !this.#closing.signal.aborted) return err;
    // Its reason, or an abort that wraps it (`events.once` rejects with an AbortError of its own).
    if (err !== this.#closing.signal.reason && (err as { name?: unknown })?.name !== 'AbortError') return err;
    return new JobworkerError(
      'ILLEGAL_TRANSITION',
      `The job engine closed before job ${id} ended; the job runs on, and a server started on its data directory adopts it`,
      { cause: err },
    );
  }

  /**
   * Resolves with the job once it is no longer queued: started (`running`), or ended without
   * starting (cancelled, failed to start). A submission answers before its job starts; this waits
   * for that start. Rejects with `signal`'s reason. `recorded`: the job as the caller looked it up
   * a moment ago, taken for the first look.
   */
  async untilStarted(id: string, signal?: AbortSignal, recorded?: Job): Promise<Job> {
    signal?.throwIfAborted();
    // Most jobs waited on have started already: one look at the record (the caller's, when it has
    // one), nothing to listen for.
    const first = await this.#recordOf(id, recorded);
    if (first.status !== 'queued') return first;
    for (;;) {
      signal?.throwIfAborted();
      const looked = new AbortController();
      const stop = linkSignals([signal, looked.signal]);
      // Listening before the look, so that no event falls between the two.
      const event = this.#nextEventOf(id, stop.signal);
      event.catch(() => {});
      try {
        const job = await this.getRecorded(id);
        if (job.status !== 'queued') return job;
        await event;
      } finally {
        looked.abort();
        stop.dispose();
      }
    }
  }

  /** Resolves at the next `job:started` or `job:finished` of this job; rejects when `signal` aborts. */
  #nextEventOf(id: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiters = this.#waiters.get(id) ?? new Set<() => void>();
      this.#waiters.set(id, waiters);
      const forget = () => {
        waiters.delete(wake);
        if (waiters.size === 0 && this.#waiters.get(id) === waiters) this.#waiters.delete(id);
        signal.removeEventListener('abort', onAbort);
      };
      const wake = () => {
        forget();
        resolve();
      };
      const onAbort = () => {
        forget();
        reject(signal.reason);
      };
      waiters.add(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Wakes the waiters of one job (see `#nextEventOf`): O(its waiters), not O(every waiter). */
  #wake(job: Job): void {
    const waiters = this.#waiters.get(job.id);
    if (waiters) for (const wake of [...waiters]) wake();
  }

  /** Reads a page of a job's output from a cursor. */
  async readOutput(id: string, options: ReadOptions): Promise<OutputRead> {
    await this.#lookUpForRead(id);
    return readOutput(this.#jobDir(id), options);
  }

  /**
   * Checks a cursor of one view of a job's output (past the view's end is a `CursorError`) and
   * answers the view's end so far: for a caller about to stream that view. For a running job the
   * look is shared with every other of the same view and cursor since the job last wrote, as
   * followers' reads are: a thousand clients opening a follow at once read its files once, not a
   * thousand times (NotFoundError for an unknown job). `follow`: the caller follows from there
   * next (see below); `recorded`: the job as the caller looked it up, not read again.
   */
  async viewEnd(
    id: string,
    selector: OutputSelector,
    cursor: number,
    options: ViewEndOptions = {},
  ): Promise<number> {
    const job = await this.#lookUpForRead(id, options.recorded);
    // Before a follow of a running job, the check reads the page the follow reads first from there
    // (`followOutput`'s batch): unless the job writes in between, the follow takes it as its first
    // read, and the check takes no place of its own among the reads the job keeps for its
    // followers. Any other check reads a byte: a page would be read for nothing.
    const limitBytes = options.follow === true && isActive(job.status) ? DEFAULT_BATCH_BYTES : 1;
    return (await this.#monitor.read(id, this.#jobDir(id), { selector, cursor, limitBytes })).end;
  }

  /**
   * Opens a reader of one view of a job's output that keeps its files open across pages (the job
   * is looked up once, here, unless the caller gives it as `recorded`). The caller closes it.
   */
  async openReader(id: string, selector: OutputSelector, recorded?: Job): Promise<OutputReader> {
    const job = await this.#lookUpForRead(id, recorded);
    // A job is recorded final only after the monitor sealed its output: its kept window is fixed.
    return OutputReader.open(this.#jobDir(id), selector, { sealed: isFinal(job.status) });
  }

  /**
   * Throws NotFoundError for an unknown job. A job nobody follows is observed only now and then:
   * its combined index is brought up to date first, so that a read sees every byte written before it.
   * `recorded`: the job as the caller looked it up a moment ago, not read again.
   */
  async #lookUpForRead(id: string, recorded?: Job): Promise<Job> {
    const job = await this.#recordOf(id, recorded);
    if (isActive(job.status)) await this.#monitor.refresh(id);
    return job;
  }

  /**
   * The job's record: `recorded`, the caller's look of a moment ago, unless it said queued (a start
   * may have come since, and what waits or reads must see it), else a read of the store.
   */
  #recordOf(id: string, recorded: Job | undefined): Promise<Job> {
    return recorded?.id === id && recorded.status !== 'queued'
      ? Promise.resolve(recorded)
      : this.getRecorded(id);
  }

  /**
   * Streams a job's output from a cursor: batches as they are written, then one `end`
   * event with the job's final status. Bounded memory per follower; no polling.
   */
  async *follow(id: string, options: FollowOptions): AsyncGenerator<FollowEvent> {
    // The engine's close ends a follow too, with an error that says so (the job runs on).
    const stop = this.#untilClosed(options.signal);
    try {
      // A queued job has no output yet: wait for it to start (or to be cancelled).
      const job = await this.untilStarted(id, stop.signal, options.recorded).catch((err) => {
        if (options.signal?.aborted) return undefined;
        throw this.#closedOr(err, id, options.signal);
      });
      if (!job) return;
      const output = followOutput(this.#monitor, this.#jobDir(id), id, { ...options, signal: stop.signal });
      if (options.progress) {
        yield* this.#withProgress(job, output);
      } else {
        for await (const events of output) yield { type: 'output', events };
      }
      if (options.signal?.aborted) return;
      if (this.#closing.signal.aborted) throw this.#closedOr(this.#closing.signal.reason, id, undefined);
      yield { type: 'end', job: await this.waitFor(id) };
    } finally {
      stop.dispose();
    }
  }

  /**
   * A job's output batches merged with its progress reports, each yielded as it comes: a report
   * while no output is written is not held back until the next byte. Reports that come faster than
   * the follower reads collapse into the latest. The pending read of the output has one reaction,
   * attached once: a race of it against each report would add one to it per report, kept until
   * the next byte (a task reporting for hours while printing nothing).
   */
  async *#withProgress(job: Job, output: AsyncGenerator<OutputEvent[]>): AsyncGenerator<FollowEvent> {
    let latest: Job | undefined = job.progress ? job : undefined;
    let wake = (): void => {};
    const removeListener = this.#progressListeners.add(job.id, (changed) => {
      latest = changed;
      wake();
    });
    let reading = false;
    let arrived: IteratorResult<OutputEvent[]> | undefined;
    let failed: { readonly error: unknown } | undefined;
    try {
      for (;;) {
        if (latest) {
          const reported = latest;
          latest = undefined;
          yield { type: 'progress', job: reported };
          continue;
        }
        if (failed) throw failed.error;
        if (arrived) {
          const next = arrived;
          arrived = undefined;
          reading = false;
          if (next.done) return;
          yield { type: 'output', events: next.value };
          continue;
        }
        if (!reading) {
          reading = true;
          output.next().then(
            (result) => {
              arrived = result;
              wake();
            },
            (error: unknown) => {
              failed = { error };
              wake();
            },
          );
        }
        // Checked and armed in one step: a report or the read can only come after it.
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      removeListener();
      // A read still pending ends with the follow's signal; the output generator closes after it.
      void output.return(undefined).catch(() => undefined);
    }
  }

  /** Progress listeners of followers, of one job or of all (leak checks). */
  progressListenerCount(jobId?: string): number {
    return this.#progressListeners.count(jobId);
  }

  /**
   * Deletes a finished job and its output (`NOT_FINISHED` while it is queued, running or paused;
   * `IN_USE` while a queued job waits for it). Resolves with the job as it was.
   */
  async delete(id: string): Promise<Job> {
    if (!isJobId(id)) throw new NotFoundError(id);
    const job = await this.#store.deleteJob(id);
    await this.#retention.removeDeletedDirs();
    this.emit('job:deleted', job);
    return job;
  }

  /**
   * Deletes every finished job that finished more than `olderThanMs` ago (only `owner`'s when
   * given), with its output, in batches; resolves with how many.
   */
  prune(request: { olderThanMs: number; owner?: string }): Promise<number> {
    const finishedBefore = new Date(this.#options.now().getTime() - request.olderThanMs);
    return this.#retention.prune({
      finishedBefore,
      ...(request.owner === undefined ? {} : { owner: request.owner }),
    });
  }

  /** Runs a retention pass now (or joins the one running): how many finished jobs it deleted. */
  applyRetention(): Promise<number> {
    return this.#retention.pass();
  }

  /** Stops supervising (jobs keep running; the next engine adopts them). Does not close the store. */
  async close(): Promise<void> {
    this.#closing.abort(new DOMException('The job engine closed', 'AbortError'));
    this.#stopForgetting();
    try {
      await this.#retention.close();
      await this.#dispatcher.close();
      this.#spawner.close();
      this.#supervisor.close();
      this.#monitor.close();
      // The sweep and the end of unrecorded runs read the store, which the caller closes next, and
      // may be walking a directory as its owner: the closing signal ends them, and what is left
      // waits for the next start. A removal that cannot be told to stop (one as root, on a mount
      // that hangs) is not waited for beyond SWEEP_CLOSE_WAIT_MS: a server must be able to stop.
      const wait = clockDeadline(this.#options.clock, SWEEP_CLOSE_WAIT_MS);
      try {
        await untilAborted(Promise.all([this.#ioSwept, this.#runsEnded]), wait.signal);
      } catch {
        this.#options.logger.warn(
          { ioDir: this.#options.ioDir },
          `the sweep of left io directories (or the end of unrecorded runs) still ran ${SWEEP_CLOSE_WAIT_MS / 1000} s into the close: closed without it`,
        );
      } finally {
        wait.clear();
      }
    } finally {
      await this.#ioLock?.release();
    }
  }

  /** Settles once the io directories left by earlier servers were removed (after `open`; see `#sweepIoDirs`). */
  get ioSwept(): Promise<void> {
    return this.#ioSwept;
  }

  /**
   * Removes the io directories no job of this node needs any more: left by a server that died
   * between a job's end and their removal, by jobs another node decided while this one was lost,
   * by jobs deleted since (their result files must not outlive them). In the background after
   * `open`; each as the account that owns it (`removeJobIo`), the job's when it is still on record.
   */
  async #sweepIoDirs(): Promise<void> {
    const { ioDir, clock } = this.#options;
    for (const id of await readdir(ioDir)) {
      if (this.#closing.signal.aborted) return;
      if (!isJobId(id) || this.#supervisor.finished(id) || this.#launches.has(id)) continue;
      const job = await this.#store.getJob(id);
      // Queued (its claim may be starting it now), running or paused: still its own.
      if (job && !isFinal(job.status)) continue;
      const paths = jobIoPaths(ioDir, id);
      const account = job ? job.spec.account : await ioDirOwner(paths.dir);
      if (account === undefined) continue; // gone meanwhile
      const removal = { clock, remover: this.#spawner, signal: this.#closing.signal };
      await removeJobIo(paths, account, removal).catch((err: unknown) => {
        if (!this.#closing.signal.aborted)
          this.#options.logger.warn({ err, jobId: id }, 'a left io directory could not be removed');
      });
    }
  }

  /** Where a job leaves its result and progress: `<ioDir>/<id>` (see `prepareIoDir`). */
  ioPaths(id: string): JobIoPaths {
    return jobIoPaths(this.#options.ioDir, id);
  }

  /** The JSON text of the result a job left, or undefined when it left none. */
  result(id: string): Promise<string | undefined> {
    return this.#store.getResult(id);
  }

  #jobDir(id: string): string {
    return childPath(this.#jobsDir, id);
  }
}

/** How long `close` waits for the sweep of left io directories (see `close`). */
const SWEEP_CLOSE_WAIT_MS = 5000;

/**
 * `promise`, or `signal`'s reason once it aborts first. The listener goes once either settles:
 * the engine's closing signal outlives every wait.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
