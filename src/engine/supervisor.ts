import { nextAttempt } from '../core/attempts.ts';
import type { Clock, ClockTimer } from '../core/clock.ts';
import { ClaimLostError, IllegalTransitionError, NotFoundError } from '../core/errors.ts';
import { newJobId } from '../core/ids.ts';
import { isFinal, type Job, type ProcessIdentity, type StopRequest, TIMEOUT_STOPPER } from '../core/job.ts';
import { unboundedController } from '../core/linked-signal.ts';
import { decideOutcome } from '../core/outcome.ts';
import type { OutputMonitor } from '../output/output-monitor.ts';
import type { Cgroups } from '../runtime/cgroups.ts';
import { type ExitRecord, readExitRecord } from '../runtime/exit-record.ts';
import { freezeProcesses } from '../runtime/freeze-processes.ts';
import { isMarkedUnrecorded, unknownIdentity } from '../runtime/identity-file.ts';
import { type BelowRemover, type JobIoPaths, readJobResult, removeJobIo } from '../runtime/job-io.ts';
import { endWatchedProcess, isSameProcessAlive } from '../runtime/process-identity.ts';
import { signalName } from '../runtime/signals.ts';
import type { WrapperEnd } from '../runtime/spawner-client.ts';
import { killLeftovers, type StopResult, stopProcesses } from '../runtime/stop-processes.ts';
import type { JobFinish, JobStore } from '../store/job-store.ts';
import type { AdoptedExitWatch } from './adopted-exit-watch.ts';
import type { StopResponse } from './job-engine.ts';
import { PROGRESS_WATCH_AFTER_MS, type ProgressWatcher } from './progress-watcher.ts';
import { mayHeal, untilWritten } from './until-written.ts';

export interface SupervisorDeps {
  readonly store: JobStore;
  readonly cgroups: Cgroups;
  readonly monitor: OutputMonitor;
  readonly adopted: AdoptedExitWatch;
  readonly now: () => Date;
  /**
   * Timeouts and the retries of an end that could not be recorded (a full disk) are set on it:
   * a test's manual clock can move a 30-day timeout on at once.
   */
  readonly clock: Clock;
  readonly defaultGraceMs: number;
  readonly jobDir: (id: string) => string;
  /** Where each job leaves its result and progress (`JOBWORKER_RESULT`, `JOBWORKER_PROGRESS`). */
  readonly ioPaths: (id: string) => JobIoPaths;
  /** Removes what a job left in its io directory as its account (the spawner): the server does not fork. */
  readonly remover: BelowRemover;
  readonly progress: ProgressWatcher;
  readonly emit: (event: 'job:started' | 'job:adopted' | 'job:stopping' | 'job:finished', job: Job) => void;
  readonly onError: (err: Error, jobId: string) => void;
}

/** A job's processes as the spawner started them. */
export interface SpawnedJob {
  readonly identity: ProcessIdentity;
  /** Settles when the wrapper ended, or was orphaned by a spawner that died (then watched by identity). */
  readonly exited: Promise<WrapperEnd>;
}

/** One running job under supervision. */
interface Supervised {
  job: Job;
  readonly identity: ProcessIdentity;
  readonly dir: string;
  /** `done` never rejects (a failure is reported): undefined when the processes were not stopped. */
  stop?: {
    readonly by: string;
    readonly graceMs: number;
    readonly done: Promise<StopResult | undefined>;
    /** A stop asked for here while its request is being recorded: the job once it is. */
    readonly recorded?: Promise<Job>;
  };
  timer?: ClockTimer;
  /** Set once the end is being recorded: a stop arriving then changes nothing. */
  finishing: boolean;
  /**
   * Settles once a user's stop during the timeout's, asked before the job ended, is recorded or
   * kept here (`#alreadyStopping`): the end waits for it, so as to carry it when it is only kept.
   */
  alsoStopping?: Promise<void>;
  /** Adopted from an earlier server: its exit was not seen as it happened. */
  readonly adopted: boolean;
  /** Decided by another node while this one was cut off (docs/cluster.md): its end is not recorded here. */
  relinquished?: Job;
  /** Its wrapper was alive while this server watched it: if it ends with no record, it was killed. */
  readonly wrapperWatched: boolean;
  finished?: Promise<Job>;
}

/**
 * Watches over running jobs from start (or adoption) to their recorded end: timeouts,
 * stops, and the end itself: leftovers killed, exit record read, output sealed, final
 * status stored. Spawned and adopted jobs differ only in how their exit is noticed.
 */
export class Supervisor {
  readonly #deps: SupervisorDeps;
  readonly #jobs = new Map<string, Supervised>();
  /** Jobs marked unrecorded that `recover` is ending in the background, by id. */
  readonly #ending = new Map<string, Promise<Job>>();
  #closed = false;
  /**
   * Aborted by `close`: ends the retries of records that could not be written, each of which
   * listens on it (any number at once: a full disk at a restart holds one per job it ends).
   */
  readonly #closing = unboundedController();

  constructor(deps: SupervisorDeps) {
    this.#deps = deps;
  }

  /** Records the start of a freshly spawned job and supervises it. */
  async started(job: Job, spawned: SpawnedJob, dir: string): Promise<Job> {
    // Listen before any await, so an instant exit is not missed.
    const exited = spawned.exited.then((end) =>
      end === 'orphaned' ? this.#deps.adopted.exited(endWatchedProcess(spawned.identity)) : undefined,
    );
    // Recorded only while this node's claim stands (`job.node` is the claimer, set by the claim).
    const started = await this.#deps.store.markStarted(job.id, spawned.identity, this.#deps.now(), job.node);
    // Tracked only once it is on record: a failed markStarted leaves nothing that nothing ends.
    // Bytes written before are picked up by its first observation (a follower's, the sweep's).
    this.#deps.monitor.watch(job.id, dir);
    // Looked at only once it has run a moment: most jobs report nothing, many end before.
    this.#deps.progress.watch(started, PROGRESS_WATCH_AFTER_MS);
    const s = this.#supervise(started, spawned.identity, dir, exited, {
      adopted: false,
      wrapperWatched: true,
    });
    this.#deps.emit('job:started', started);
    // A stop that came while it was being started: recorded then, carried out now.
    if (started.stop) {
      s.stop = {
        by: started.stop.by,
        graceMs: started.stop.graceMs,
        done: this.#stopProcesses(s, started.stop.graceMs),
      };
      this.#deps.emit('job:stopping', started);
    }
    return started;
  }

  /**
   * Records a job that did not start as a supervised job: it stays in history as `failed`. `ran`:
   * its command may have run (it was exec'd and then stopped, its start not recorded): what it
   * printed is sealed and counted like any job's output, not recorded as nothing. Recorded only
   * while the claim of `job.node` (the claimer) stands: else `ClaimLostError`, nothing recorded,
   * and the job is not this node's to clean up after (another node may run it now).
   */
  async failedToStart(job: Job, err: Error, options: { retry?: boolean; ran?: boolean } = {}): Promise<Job> {
    // A stop that came while it was claimed (only recorded, as it was being started) is on record
    // and the store does not retry it (`markRetried`): someone asked it to stop.
    const outputBytes = options.ran ? await this.#printedBy(job) : { stdout: 0, stderr: 0 };
    const failed = await this.#recordUntilWritten(
      job,
      {
        status: 'failed',
        exit: { exitCode: null, signal: null, reason: `failed to start: ${err.message}` },
        finishedAt: this.#deps.now(),
        outputBytes,
        // Retried while the store is away: by the time it lands, this node may have been declared
        // lost and the job run by another. The store checks the claim in the write's transaction.
        claimedBy: job.node,
      },
      options.retry !== false,
    );
    if (failed === undefined) return job;
    await this.#removeIo(job);
    this.#deps.emit('job:finished', failed);
    return failed;
  }

  /** Freezes a running job's processes and records it `paused`; undefined when not supervised here. */
  async pause(id: string): Promise<Job | undefined> {
    const s = this.#jobs.get(id);
    if (!s) return undefined;
    if (s.stop || s.finishing || s.job.status !== 'running') {
      throw new IllegalTransitionError(id, s.job.status, 'paused');
    }
    // Frozen first, recorded after: whenever the record says `paused`, the job is frozen. A server
    // dying in between leaves a frozen job recorded running, which recovery thaws.
    freezeProcesses(s.identity, this.#deps.cgroups, true);
    try {
      s.job = await this.#deps.store.markPaused(id, this.#deps.now());
    } catch (err) {
      freezeProcesses(s.identity, this.#deps.cgroups, false);
      throw err;
    }
    return s.job;
  }

  /** Thaws a paused job and records it `running` again; undefined when not supervised here. */
  async resume(id: string): Promise<Job | undefined> {
    const s = this.#jobs.get(id);
    if (!s) return undefined;
    if (s.job.status !== 'paused') throw new IllegalTransitionError(id, s.job.status, 'running');
    freezeProcesses(s.identity, this.#deps.cgroups, false);
    try {
      s.job = await this.#deps.store.markResumed(id);
    } catch (err) {
      // Not recorded (a full disk): frozen again, so that the job is as its record says.
      freezeProcesses(s.identity, this.#deps.cgroups, true);
      throw err;
    }
    return s.job;
  }

  /** Jobs supervised here now (running or paused). */
  get size(): number {
    return this.#jobs.size;
  }

  /** Reconciles jobs recorded as running: adopts live ones, records how the others ended. */
  async recover(jobs: readonly Job[]): Promise<void> {
    const unrecorded: [Job, ProcessIdentity][] = [];
    for (const job of jobs) {
      const dir = this.#deps.jobDir(job.id);
      const identity = job.process ?? unknownIdentity([]);
      // Its start was recorded after all (the answer to that commit was lost: a connection to
      // PostgreSQL cut, say), but the server that started it took it for unrecorded, stopped it,
      // marked it so, and died before it recorded that: it ends as such a job's claim does, as a
      // failure that is never retried (its command did begin; a retry would run it again).
      let marked = false;
      try {
        marked = isMarkedUnrecorded(dir);
      } catch (err) {
        this.#deps.onError(err as Error, job.id);
      }
      if (marked) {
        unrecorded.push([job, identity]);
        continue;
      }
      try {
        this.#deps.monitor.watch(job.id, dir);
        // It may have written while no server ran: index that now, not at the first sweep.
        void this.#deps.monitor.refresh(job.id);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
        // Its output, index and exit record went with the directory: nothing can be followed or
        // known of it any more, and one such job must not keep the server from starting.
        await this.#lose(job, identity, `its job directory is gone: ${dir}`);
        continue;
      }
      const watched = endWatchedProcess(identity);
      const wrapperWatched = identity.wrapper !== undefined && isSameProcessAlive(watched);
      const exited = this.#deps.adopted.exited(watched);
      const s = this.#supervise(job, identity, dir, exited, { adopted: true, wrapperWatched });
      this.#deps.progress.watch(job);
      // The processes are made to match the record: a pause or resume cut short by a crash
      // may have left them frozen while recorded running, or the other way round.
      freezeProcesses(identity, this.#deps.cgroups, job.status === 'paused');
      if (job.stop) {
        // A stop was under way when the last server went: finish it with the grace that remains.
        const left = Math.max(0, job.stop.graceMs - (this.#deps.now().getTime() - job.stop.at.getTime()));
        s.stop = { by: job.stop.by, graceMs: job.stop.graceMs, done: this.#stopProcesses(s, left) };
      }
      this.#deps.emit('job:adopted', job);
    }
    // Once the others are supervised.
    for (const [job, identity] of unrecorded) this.endUnrecordedLater(job, identity);
  }

  /**
   * `#endUnrecorded` in the background, for a restart: a failure that cannot be recorded yet (a
   * full disk, the database away) is retried on the clock, and must keep neither the other jobs
   * unsupervised nor the server from starting. A wait on the job (`finished`) gets its end, or the
   * failure to end it, never the job as still running.
   */
  endUnrecordedLater(job: Job, identity: ProcessIdentity): void {
    const ending = this.#endUnrecorded(job, identity).finally(() => this.#ending.delete(job.id));
    ending.catch((err: unknown) => this.#deps.onError(err as Error, job.id));
    this.#ending.set(job.id, ending);
  }

  /**
   * Ends a job whose start the server that ran it could not record, and which it stopped and marked
   * so (`markUnrecorded`) before it died: whatever is left of it is ended (only the recorded
   * process and the job's cgroups: its process group is no longer known to be its own after a
   * restart, as a pgid may be reused once its members are gone), and it is recorded failed, with
   * no retry.
   */
  async #endUnrecorded(job: Job, identity: ProcessIdentity): Promise<Job> {
    await this.#endLeftovers(job, identity);
    return this.failedToStart(
      job,
      new Error('its start could not be recorded, so it was stopped; it is not run again'),
      { retry: false, ran: true },
    );
  }

  /**
   * Ends whatever is left of a job this server does not supervise (thawed first if it was paused),
   * by its recorded process and its cgroups only, and removes its cgroups.
   */
  async #endLeftovers(job: Job, identity: ProcessIdentity): Promise<void> {
    if (job.status === 'paused') freezeProcesses(identity, this.#deps.cgroups, false);
    await stopProcesses(identity, this.#deps.cgroups, 0, false, this.#deps.clock);
    try {
      this.#deps.cgroups.remove(identity.cgroups);
    } catch (err) {
      this.#deps.onError(err as Error, job.id);
    }
  }

  /** Records as `lost` a job that cannot be supervised, after ending whatever of it still runs. */
  async #lose(job: Job, identity: ProcessIdentity, reason: string): Promise<void> {
    await this.#endLeftovers(job, identity);
    const finish: JobFinish = {
      status: 'lost',
      exit: { exitCode: null, signal: null, reason },
      finishedAt: this.#deps.now(),
      outputBytes: { stdout: 0, stderr: 0 },
    };
    const lost = await this.#record(job, finish).catch(() => {
      // One such job must not keep the server from starting (the store busy or away a moment, its
      // disk full): its end is recorded in the background, on the clock (a failure that goes on
      // is reported there), and a wait on it gets it.
      const ending = this.#recordUntilWritten(job, finish)
        .then(async (recorded) => {
          if (recorded) await this.#lost(job, recorded);
          return recorded ?? job;
        })
        .finally(() => this.#ending.delete(job.id));
      ending.catch((later: unknown) => this.#deps.onError(later as Error, job.id));
      this.#ending.set(job.id, ending);
      return undefined;
    });
    if (lost) await this.#lost(job, lost);
  }

  /** What follows the record of a job lost: its io directory goes, and its end is told. */
  async #lost(job: Job, recorded: Job): Promise<void> {
    await this.#removeIo(job);
    this.#deps.emit('job:finished', recorded);
  }

  /** Records a stop and starts ending the job; undefined when this node does not run it. */
  async requestStop(id: string, by: string, graceMs: number): Promise<StopResponse | undefined> {
    const s = this.#jobs.get(id);
    if (!s) return undefined;
    // A job whose end is being recorded answers with that end once it is on record: its `s.job`
    // still says running, and a stop of it must read as one of a finished job.
    if (s.finishing && s.finished) {
      const ended = await s.finished.catch(() => s.job);
      return { job: ended, changed: false };
    }
    if (s.stop?.recorded) {
      // One under way whose request is still being recorded: answered with the job once it is.
      // Should that fail (`#beginStop` then drops it), this stop is tried afresh, not lost.
      const job = await s.stop.recorded.catch(() => undefined);
      return job === undefined ? this.requestStop(id, by, graceMs) : this.#alreadyStopping(s, job, by);
    }
    if (s.stop) return await this.#alreadyStopping(s, s.job, by);
    const recorded = this.#beginStop(s, by, graceMs);
    return { job: await recorded, changed: true };
  }

  /**
   * The answer to a stop of a job already stopping. A user's stop while its timeout's is under way
   * changes one thing: the run is not retried, someone having asked it to stop. It is recorded
   * beside the timeout's (`StopRequest.alsoBy`) for the end's transaction to honour, whichever
   * server or node records that end.
   */
  async #alreadyStopping(s: Supervised, job: Job, by: string): Promise<StopResponse> {
    // `s.job` is the job as last recorded here (`job` may be as the timeout's stop recorded it).
    // Only over the timeout's own stop: one whose record failed may have left a user's first.
    const known = s.job.stop?.alsoBy ?? job.stop?.alsoBy;
    const overTimeout = s.job.stop === null || s.job.stop.by === TIMEOUT_STOPPER;
    if (s.stop?.by !== TIMEOUT_STOPPER || by === TIMEOUT_STOPPER || known !== undefined || !overTimeout) {
      return { job: known === undefined ? job : s.job, changed: false };
    }
    const request = { at: this.#deps.now(), by, graceMs: s.stop.graceMs };
    const answer = this.#recordAlsoStop(s, job, request);
    // The end waits for it (`#finish`): a stop that cannot be recorded is then carried by the end.
    s.alsoStopping = answer.then(
      () => undefined,
      () => undefined,
    );
    return answer;
  }

  /** `#alreadyStopping`'s record of a user's stop beside the timeout's (`request.by`: the user). */
  async #recordAlsoStop(s: Supervised, job: Job, request: StopRequest): Promise<StopResponse> {
    const { by } = request;
    try {
      const recorded = await this.#deps.store.markStopRequested(job.id, request);
      // Its stop only: what else `s.job` holds is this supervisor's to keep (its forced stop, say).
      s.job = { ...s.job, stop: recorded.stop };
      // The user's stop is the first on record when the timeout's could not be recorded (below).
      return { job: recorded, changed: recorded.stop?.alsoBy === by || recorded.stop?.by === by };
    } catch (err) {
      if (mayHeal(err) && s.job.stop !== null) {
        // A full disk: kept here, and recorded with the job's end (`#finish` passes its stop),
        // which is retried until it can be written; no retry follows all the same.
        this.#deps.onError(
          new Error(`the stop could not be recorded; it is recorded with the job's end: ${String(err)}`, {
            cause: err,
          }),
          job.id,
        );
        s.job = { ...s.job, stop: { ...s.job.stop, alsoBy: by } };
        return { job: s.job, changed: true };
      }
      // It ended meanwhile: the stop changes nothing, and the answer shows the end.
      if (!(err instanceof IllegalTransitionError)) throw err;
      return { job: (await this.#deps.store.getJob(job.id)) ?? job, changed: false };
    }
  }

  /**
   * Gives up a job that another node has already decided (this node was declared lost while it ran
   * it; docs/cluster.md): its processes are killed at once, its watches and cgroups go, and nothing
   * is recorded, since the store already holds its end (`decided`), or no longer holds the job at
   * all (`decided` undefined: deleted since, by its user or the retention; then no event is told,
   * there being no job to tell of). False when not supervised here.
   */
  async relinquish(id: string, decided: Job | undefined): Promise<boolean> {
    const s = this.#jobs.get(id);
    if (!s || s.relinquished) return false;
    s.relinquished = decided ?? s.job;
    s.finishing = true;
    s.timer?.clear();
    if (s.job.status === 'paused') freezeProcesses(s.identity, this.#deps.cgroups, false);
    await stopProcesses(s.identity, this.#deps.cgroups, 0, !s.adopted, this.#deps.clock);
    await killLeftovers(s.identity, this.#deps.cgroups, !s.adopted, this.#deps.clock);
    await this.#deps.monitor.finish(id, s.dir).catch((err: unknown) => {
      this.#deps.onError(err as Error, id);
      // No second try here: this node lets the job go, and its followers must not wait for ever.
      this.#deps.monitor.abandon(id);
    });
    await this.#deps.progress.finish(id).catch((err: unknown) => this.#deps.onError(err as Error, id));
    await this.#deps.cgroups
      .removeAsync(s.identity.cgroups)
      .catch((err: unknown) => this.#deps.onError(err as Error, id));
    await this.#removeIo(s.job);
    this.#jobs.delete(id);
    if (decided) this.#deps.emit('job:finished', decided);
    return true;
  }

  /** Ids of the jobs supervised here now. */
  ids(): string[] {
    return [...this.#jobs.keys()];
  }

  /** The final job once it has ended, for jobs supervised here (or being ended: `recover`). */
  finished(id: string): Promise<Job> | undefined {
    return this.#jobs.get(id)?.finished ?? this.#ending.get(id);
  }

  close(): void {
    this.#closed = true;
    this.#closing.abort();
    for (const s of this.#jobs.values()) s.timer?.clear();
    this.#jobs.clear();
    this.#deps.progress.close();
    this.#deps.adopted.close();
  }

  #supervise(
    job: Job,
    identity: ProcessIdentity,
    dir: string,
    exited: Promise<void>,
    how: { readonly adopted: boolean; readonly wrapperWatched: boolean },
  ): Supervised {
    const s: Supervised = { job, identity, dir, finishing: false, ...how };
    this.#jobs.set(job.id, s);
    const { timeoutMs } = job.spec;
    if (timeoutMs !== null && job.startedAt) {
      const left = timeoutMs - (this.#deps.now().getTime() - job.startedAt.getTime());
      s.timer = this.#deps.clock.setTimer(
        () => {
          if (!s.stop && !s.finishing) {
            this.#beginStop(s, TIMEOUT_STOPPER, this.#deps.defaultGraceMs).catch((err) =>
              this.#deps.onError(err, job.id),
            );
          }
        },
        Math.max(0, left),
      );
    }
    s.finished = exited.then(() => this.#finish(s));
    s.finished.catch((err) => this.#deps.onError(err as Error, job.id));
    return s;
  }

  #beginStop(s: Supervised, by: string, graceMs: number): Promise<Job> {
    const request = { at: this.#deps.now(), by, graceMs };
    const recorded = this.#deps.store.markStopRequested(s.job.id, request).catch((err: unknown) => {
      if (!mayHeal(err)) throw err;
      // The disk is full: the stop is carried out all the same, and recorded with the job's end
      // (`#finish`), which is retried until it can be written. The answer shows the stop as asked.
      this.#deps.onError(
        new Error(`the stop could not be recorded; stopping the job anyway: ${String(err)}`, { cause: err }),
        s.job.id,
      );
      return { ...s.job, stop: request };
    });
    // Signals go out only once the request is on record (or could not be), so history never lacks a cause.
    // One that could not be recorded for good (the job ended meanwhile, decided elsewhere) is the
    // caller's error, nothing is signalled, and a later stop is tried afresh. `done` must not
    // reject: nothing awaits it until the job's end is recorded, and a rejection nobody handles
    // ends the server.
    const stop: NonNullable<Supervised['stop']> = {
      by,
      graceMs,
      recorded,
      done: recorded.then(
        () => this.#stopProcesses(s, graceMs),
        () => {
          if (s.stop === stop) s.stop = undefined;
          return undefined;
        },
      ),
    };
    s.stop = stop;
    return recorded.then((job) => {
      s.job = job;
      this.#deps.emit('job:stopping', job);
      return job;
    });
  }

  /**
   * Ends the job's processes: SIGTERM, and SIGKILL once `graceMs` has passed. Never rejects (its
   * promise waits, unawaited, for the job's end): a failure is reported with the job's id, and then
   * resolves undefined.
   */
  async #stopProcesses(s: Supervised, graceMs: number): Promise<StopResult | undefined> {
    try {
      // A frozen job would sit on its SIGTERM until the grace ran out: thaw it so it can exit cleanly.
      if (s.job.status === 'paused') freezeProcesses(s.identity, this.#deps.cgroups, false);
      const result = await stopProcesses(
        s.identity,
        this.#deps.cgroups,
        graceMs,
        !s.adopted,
        this.#deps.clock,
      );
      if (result.forced && !this.#closed) {
        // Not on record when the disk is full: the end records it then (`stopForced` of the finish).
        // Not recordable for good (the job was decided meanwhile): reported, and carried by the end.
        s.job = await this.#deps.store.markStopForced(s.job.id).then(
          // As known once it is recorded: a user's stop kept in memory meanwhile included.
          (recorded) => withStopKnown(recorded, s.job),
          (err: unknown) => {
            if (!mayHeal(err)) {
              this.#deps.onError(
                new Error(`the forced stop could not be recorded: ${String(err)}`, { cause: err }),
                s.job.id,
              );
            }
            return { ...s.job, stopForced: true };
          },
        );
      }
      return result;
    } catch (err) {
      this.#deps.onError(new Error(`the stop of the job failed: ${String(err)}`, { cause: err }), s.job.id);
      // Not carried out: a later stop is tried afresh instead of answering that one is under way.
      s.stop = undefined;
      return undefined;
    }
  }

  async #finish(s: Supervised): Promise<Job> {
    s.finishing = true;
    s.timer?.clear();
    if (this.#closed) return s.job;
    if (s.relinquished) return s.relinquished;
    const stopResult = s.stop ? await s.stop.done : undefined;
    // The job ended when its main process did (its wrapper recorded that and exited); whatever it
    // left behind goes with it. A wrapper killed before it recorded may leave the main process too.
    // Once, now: without cgroups the group is judged ours only right after its wrapper ended.
    await killLeftovers(s.identity, this.#deps.cgroups, !s.adopted, this.#deps.clock);
    // Tried again, as the record is below, while it fails on what may pass (too many open files,
    // say): a job whose end was seen must not stay recorded running, holding its queue's slot.
    const end = await this.#retried(s.job.id, 'the end of the job could not be read', () => this.#readEnd(s));
    if (end === undefined || this.#closed) return s.job;
    const { usage, record, outputBytes, result } = end;
    const forced = stopResult?.forced ?? s.job.stopForced;
    const outcome = decideOutcome({
      record,
      command: s.job.spec.command,
      cwd: s.job.spec.cwd,
      ...(s.job.spec.account ? { account: s.job.spec.account.name } : {}),
      stopBy: s.stop?.by,
      timeoutMs: s.job.spec.timeoutMs,
      forcedAfterMs: forced && s.stop ? s.stop.graceMs : undefined,
      supervisorKilled: !record && s.wrapperWatched,
      signalName,
      limits: s.job.spec.limits,
      ...(usage ? { usage } : {}),
    });
    await this.#deps.cgroups
      .removeAsync(s.identity.cgroups)
      .catch((err: unknown) => this.#deps.onError(err as Error, s.job.id));
    await s.alsoStopping;
    let finished: Job | undefined;
    try {
      finished = await this.#recordUntilWritten(s.job, {
        ...outcome,
        finishedAt: this.#finishedAt(s, record),
        outputBytes,
        // A stop that could not be recorded when it was asked for (a full disk) is recorded now.
        ...(s.job.stop ? { stop: s.job.stop } : {}),
        stopForced: forced,
        ...(usage ? { usage } : {}),
        ...(result ? { result } : {}),
      });
    } catch (err) {
      if (!decidedElsewhere(err)) throw err;
      return this.#letGo(s, err as Error);
    }
    if (finished === undefined) return s.job;
    await this.#removeIo(s.job);
    this.#jobs.delete(s.job.id);
    this.#deps.emit('job:finished', finished);
    return finished;
  }

  /**
   * A job whose end the store refused as no longer this node's to record (decided by another node,
   * deleted since, or recorded by a late write of another: `decidedElsewhere`). Everything else of
   * it was ended by `#finish` before; as `relinquish` does, its io directory goes and it leaves the
   * supervised jobs, so that it no longer holds a slot of this node, and the end on record is told.
   */
  async #letGo(s: Supervised, err: Error): Promise<Job> {
    // Given up meanwhile (`relinquish`, at a beat that found this node lost): done there.
    if (s.relinquished) return s.relinquished;
    s.relinquished = s.job;
    this.#deps.onError(
      new Error(`the end of the job was not recorded: the store holds another decision (${err.message})`, {
        cause: err,
      }),
      s.job.id,
    );
    await this.#removeIo(s.job);
    this.#jobs.delete(s.job.id);
    const decided = await this.#deps.store.getJob(s.job.id).catch(() => undefined);
    if (decided && isFinal(decided.status)) this.#deps.emit('job:finished', decided);
    return decided ?? s.job;
  }

  /** What a job that ended left (its leftovers killed): its usage, exit record, output and result. */
  async #readEnd(s: Supervised) {
    // Read before the cgroups are removed (after this): their counters go with them.
    const usage = s.identity.cgroups.length > 0 ? this.#deps.cgroups.usage(s.identity.cgroups) : undefined;
    const record = await readExitRecord(s.dir);
    // The seal's last observation read the final sizes; read again only when it could not. A seal
    // whose bytes the index could not take (a full disk) rejects: `#finish` retries all of this.
    const outputBytes =
      (await this.#deps.monitor.finish(s.job.id, s.dir)) ?? (await this.#deps.monitor.sizes(s.dir));
    await this.#deps.progress.finish(s.job.id);
    const result = await readJobResult(this.#deps.ioPaths(s.job.id), s.job.spec.account);
    return { usage, record, outputBytes, result };
  }

  /** What a job that may have run printed: its output sealed (indexed for `all`) and counted. */
  async #printedBy(job: Job): Promise<{ stdout: number; stderr: number }> {
    const dir = this.#deps.jobDir(job.id);
    try {
      // Tried again, as `#readEnd`'s seal is, while the index cannot take the last bytes (a full
      // disk): recorded final without them, the `all` view would miss them for good.
      const sealed = await this.#retried(job.id, 'what the job printed could not be indexed', () =>
        this.#deps.monitor.finish(job.id, dir),
      );
      return sealed ?? (await this.#deps.monitor.sizes(dir));
    } catch (err) {
      this.#deps.onError(err as Error, job.id);
      return { stdout: 0, stderr: 0 };
    }
  }

  /**
   * Removes a job's io directory once its end (and result) is on record. What it left beyond its
   * result and progress is removed as its account, for at most `IO_REMOVAL_MS` (a job that
   * mounted something there could make that hang): the directory is then left, and reported.
   */
  async #removeIo(job: Job): Promise<void> {
    const removal = { clock: this.#deps.clock, remover: this.#deps.remover };
    await removeJobIo(this.#deps.ioPaths(job.id), job.spec.account, removal).catch((err: unknown) =>
      this.#deps.onError(err as Error, job.id),
    );
  }

  /**
   * When the job ended. A job whose wrapper we saw exit ended then, by the engine's clock (which
   * a test may drive), except when its record was written late: the disk was full when it ended,
   * and the wrapper waited for space, so the time in the record is the true one. That time is
   * the wall clock's; it is kept between the job's start and now, so that a record never makes
   * an end earlier than its start or later than its recording, whatever clock the engine runs on.
   * An adopted job may have ended long before we noticed: its record knows when.
   */
  #finishedAt(s: Supervised, record: ExitRecord | undefined): Date {
    const now = this.#deps.now();
    if (!record || !(s.adopted || record.late)) return now;
    if (s.adopted) return record.at;
    const start = s.job.startedAt?.getTime() ?? record.at.getTime();
    return new Date(Math.min(now.getTime(), Math.max(start, record.at.getTime())));
  }

  /**
   * `#record`, tried again with a backoff on the engine's clock while the store cannot write (a
   * full disk): the job stays supervised meanwhile, and its end is recorded once space returns.
   * Undefined when the supervisor closed first (the next server records it, as for any job
   * that ended while no server ran).
   */
  #recordUntilWritten(job: Job, finish: JobFinish, retry = true): Promise<Job | undefined> {
    return this.#retried(job.id, 'the end of the job could not be recorded', () =>
      this.#record(job, finish, retry),
    );
  }

  /**
   * `attempt`, tried again with a doubling backoff on the engine's clock while it fails on what
   * may pass (`untilWritten`); the first failure is reported as `what`. Undefined once the
   * supervisor closes.
   */
  #retried<T>(jobId: string, what: string, attempt: () => Promise<T>): Promise<T | undefined> {
    return untilWritten(attempt, {
      clock: this.#deps.clock,
      signal: this.#closing.signal,
      onFirstFailure: (err) =>
        this.#deps.onError(
          new Error(`${what}; retrying until it can: ${String(err)}`, { cause: err }),
          jobId,
        ),
    });
  }

  /**
   * Records how a job ended and, when its retry policy says so (and `retry` allows), its next
   * attempt with it.
   */
  #record(job: Job, finish: JobFinish, retry = true): Promise<Job> {
    const now = this.#deps.now();
    const next = retry ? nextAttempt(job, finish.status, now, newJobId(now.getTime())) : null;
    if (!next) return this.#deps.store.markFinished(job.id, finish);
    // Unless the store finds that a user asked the run to stop: then it is not retried.
    return this.#deps.store.markRetried(job.id, finish, next);
  }
}

/**
 * Whether a refused end means the job is not this node's to record any more: its record moved on
 * without it (another node decided it, or a late write ended it) or it is gone.
 */
function decidedElsewhere(err: unknown): boolean {
  return (
    err instanceof IllegalTransitionError || err instanceof ClaimLostError || err instanceof NotFoundError
  );
}

/**
 * `recorded` (a job as the store returned it) with what of its stop is known here and not on
 * record: a stop, or a user's during the timeout's, that a full disk kept out of the store. The
 * end records them (`#finish` passes the job's stop).
 */
function withStopKnown(recorded: Job, known: Job): Job {
  const stop = recorded.stop ?? known.stop;
  if (stop === null) return recorded;
  const alsoBy = stop.alsoBy ?? known.stop?.alsoBy;
  return { ...recorded, stop: alsoBy === undefined ? stop : { ...stop, alsoBy } };
}
