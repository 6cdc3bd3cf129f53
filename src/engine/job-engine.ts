import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NotFoundError } from '../core/errors.ts';
import { isJobId, newJobId } from '../core/ids.ts';
import { isFinal, type Job } from '../core/job.ts';
import { normalizeSpec } from '../core/spec.ts';
import { openOutputFiles } from '../output/output-files.ts';
import { followOutput } from '../output/output-follower.ts';
import { OutputMonitor } from '../output/output-monitor.ts';
import { type OutputRead, readOutput } from '../output/output-reader.ts';
import type { OutputEvent, OutputSelector } from '../output/output-types.ts';
import { Cgroups } from '../runtime/cgroups.ts';
import { jobEnvironment } from '../runtime/job-environment.ts';
import { preflight } from '../runtime/preflight.ts';
import { spawnJob } from '../runtime/spawn-job.ts';
import type { JobListQuery, JobPage, JobStore } from '../store/job-store.ts';
import { AdoptedExitWatch } from './adopted-exit-watch.ts';
import type { EngineEvents } from './engine-events.ts';
import { type EngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './engine-options.ts';
import { Supervisor } from './supervisor.ts';

/** Who is asking: recorded on the job and on its stop. */
export interface Caller {
  readonly user: string;
}

export interface StopOptions {
  /** Time between SIGTERM and SIGKILL; the engine default when absent. */
  readonly graceMs?: number;
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
}

/** What a follower receives: output batches, then exactly one `end` with the final job. */
export type FollowEvent =
  | { readonly type: 'output'; readonly events: OutputEvent[] }
  | { readonly type: 'end'; readonly job: Job };

/**
 * The job engine: runs commands as durable jobs and answers for them. It ties the runtime
 * (spawn, stop, reattach), the output files and the store together; the service layer and
 * every adapter call it. Jobs outlive the engine: `close()` leaves them running and the
 * next `JobEngine.open` on the same data directory and store adopts them.
 */
export class JobEngine extends EventEmitter<EngineEvents> {
  readonly #options: ResolvedEngineOptions;
  readonly #store: JobStore;
  readonly #monitor: OutputMonitor;
  readonly #cgroups: Cgroups;
  readonly #supervisor: Supervisor;

  private constructor(options: ResolvedEngineOptions) {
    super();
    this.#options = options;
    this.#store = options.store;
    this.#cgroups = new Cgroups(options.cgroups);
    this.#monitor = new OutputMonitor({
      capBytes: options.outputCapBytes,
      onError: (err, jobId) => options.logger.warn({ err, jobId }, 'output monitoring failed'),
    });
    this.#supervisor = new Supervisor({
      store: this.#store,
      cgroups: this.#cgroups,
      monitor: this.#monitor,
      adopted: new AdoptedExitWatch(options.adoptedCheckMs),
      now: options.now,
      defaultGraceMs: options.defaultGraceMs,
      jobDir: (id) => this.#jobDir(id),
      emit: (event, job) => this.emit(event, job),
      onError: (err, jobId) => {
        options.logger.error({ err, jobId }, 'job supervision failed');
        this.emit('engine:error', err, jobId);
      },
    });
  }

  /** Opens the engine and reconciles every job this node left running (adopt, or record how it ended). */
  static async open(options: EngineOptions): Promise<JobEngine> {
    const engine = new JobEngine(resolveEngineOptions(options));
    await mkdir(join(engine.#options.dataDir, 'jobs'), { recursive: true });
    const running = await engine.#store.listRunning(engine.#options.node);
    await engine.#supervisor.recover(running);
    engine.#options.logger.info(
      { node: engine.#options.node, cgroups: engine.#cgroups.mode, reconciled: running.length },
      'job engine open',
    );
    return engine;
  }

  /** How this host contains jobs: `v2`, `v1` or `none` (process groups only). */
  get cgroupMode(): string {
    return this.#cgroups.mode;
  }

  /**
   * Validates the spec, then creates and starts the job. Bad input throws a
   * `ValidationError` with nothing created; a job the OS refuses to start is recorded as
   * `failed` and returned.
   */
  async start(input: unknown, caller: Caller): Promise<Job> {
    const spec = normalizeSpec(input, { cwd: homedir() });
    this.#cgroups.checkLimits(spec.limits);
    const id = newJobId(this.#options.now().getTime());
    const env = jobEnvironment(spec, id);
    preflight(spec, env);

    const dir = this.#jobDir(id);
    const job: Job = {
      id,
      spec,
      status: 'queued',
      owner: caller.user,
      createdAt: this.#options.now(),
      startedAt: null,
      finishedAt: null,
      stop: null,
      stopForced: false,
      process: null,
      exit: null,
      node: this.#options.node,
      outputBytes: { stdout: 0, stderr: 0 },
    };
    // Files and cgroups first, the record last: if any of it fails nothing is left behind.
    await mkdir(dir, { mode: 0o700 });
    let fds: { stdout: number; stderr: number } | undefined;
    let cgroups: string[] = [];
    try {
      fds = await openOutputFiles(dir);
      cgroups = this.#cgroups.create(id, spec.limits);
      await this.#store.insertJob(job);
    } catch (err) {
      if (fds) closeFds(fds);
      this.#cgroups.remove(cgroups);
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    try {
      const spawned = spawnJob({ spec, dir, cgroups, env, stdoutFd: fds.stdout, stderrFd: fds.stderr });
      return await this.#supervisor.started(job, spawned, dir);
    } catch (err) {
      this.#cgroups.remove(cgroups);
      return this.#supervisor.failedToStart(job, err as Error);
    } finally {
      closeFds(fds);
    }
  }

  /**
   * Stops a job and everything it spawned. The request is recorded at once and the job
   * becomes `stopped` when its processes are gone (await `waitFor` for that). A stop on a
   * finished job changes nothing and says so (`changed: false`).
   */
  async stop(id: string, caller: Caller, options: StopOptions = {}): Promise<StopResponse> {
    const graceMs = options.graceMs ?? this.#options.defaultGraceMs;
    const stopping = await this.#supervisor.requestStop(id, caller.user, graceMs);
    if (stopping) return stopping;
    const job = await this.get(id);
    if (isFinal(job.status)) return { job, changed: false };
    // Running but not supervised here: it belongs to another node (scale-out is a later issue).
    return { job, changed: false };
  }

  /** The job (with live output sizes while it runs); throws NotFoundError. */
  async get(id: string): Promise<Job> {
    const job = isJobId(id) ? await this.#store.getJob(id) : undefined;
    if (!job) throw new NotFoundError(id);
    if (job.status === 'running') return { ...job, outputBytes: await this.#monitor.sizes(this.#jobDir(id)) };
    return job;
  }

  list(query: JobListQuery): Promise<JobPage> {
    return this.#store.listJobs(query);
  }

  /** Resolves with the job once it has reached a final status. */
  async waitFor(id: string): Promise<Job> {
    const pending = this.#supervisor.finished(id);
    if (pending) return pending;
    return this.get(id);
  }

  /** Reads a page of a job's output from a cursor. */
  async readOutput(id: string, options: ReadOptions): Promise<OutputRead> {
    await this.get(id);
    return readOutput(this.#jobDir(id), options);
  }

  /**
   * Streams a job's output from a cursor: batches as they are written, then one `end`
   * event with the job's final status. Bounded memory per follower; no polling.
   */
  async *follow(id: string, options: FollowOptions): AsyncGenerator<FollowEvent> {
    await this.get(id);
    for await (const events of followOutput(this.#monitor, this.#jobDir(id), id, options)) {
      yield { type: 'output', events };
    }
    if (options.signal?.aborted) return;
    yield { type: 'end', job: await this.waitFor(id) };
  }

  /** Stops supervising (jobs keep running; the next engine adopts them). Does not close the store. */
  async close(): Promise<void> {
    this.#supervisor.close();
    this.#monitor.close();
  }

  #jobDir(id: string): string {
    return join(this.#options.dataDir, 'jobs', id);
  }
}

function closeFds(fds: { stdout: number; stderr: number }): void {
  closeSync(fds.stdout);
  closeSync(fds.stderr);
}
