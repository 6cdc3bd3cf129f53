import { type FSWatcher, watch } from 'node:fs';
import { ValidationError } from '../core/errors.ts';
import type { OutputBytes } from '../core/job.ts';
import { appendObserved } from './index-appender.ts';
import { OUTPUT_FILE_NAMES, outputPaths, readOutputSizes } from './output-files.ts';
import type { OutputListener, OutputNotice } from './output-types.ts';
import { type JobRetention, newJobRetention, RetentionEnforcer } from './retention-enforcer.ts';

export interface OutputMonitorOptions {
  /** Each stream keeps at most this many of its newest bytes; `Infinity` keeps everything. */
  readonly capBytes: number;
  /** Told about failed observations and punches; the monitor carries on either way. */
  readonly onError?: (err: Error, jobId: string) => void;
  /** The fallocate(1) to run (default: `fallocate` on PATH). */
  readonly fallocatePath?: string;
}

interface Watched {
  readonly jobId: string;
  readonly dir: string;
  readonly listeners: Set<OutputListener>;
  watcher: FSWatcher | undefined;
  /** The observation in flight; `again` asks for one more when events came during it. */
  observing?: Promise<void>;
  again: boolean;
  finishing?: Promise<void>;
  readonly retention: JobRetention;
}

// Events about other files of the job directory (our own index and kept window) are not output.
const STREAM_FILES = new Set<string>([OUTPUT_FILE_NAMES.stdout, OUTPUT_FILE_NAMES.stderr]);

/**
 * Observes the output of running jobs: one kernel watch per job (on its directory), however many
 * followers it has. Each observation stats both streams, appends what grew to the combined index,
 * enforces retention, then tells the job's followers. Observations of a job never overlap: events
 * during one ask for one more. No descriptor is held per job between observations.
 * One monitor per engine: it is the only writer of each job's index and kept window.
 */
export class OutputMonitor {
  readonly #onError: (err: Error, jobId: string) => void;
  readonly #retention: RetentionEnforcer;
  readonly #jobs = new Map<string, Watched>();

  constructor(options: OutputMonitorOptions) {
    const { capBytes } = options;
    if (!(capBytes === Number.POSITIVE_INFINITY || (Number.isSafeInteger(capBytes) && capBytes > 0))) {
      throw ValidationError.expected('capBytes', 'a positive integer or Infinity', capBytes);
    }
    this.#onError = options.onError ?? (() => {});
    this.#retention = new RetentionEnforcer(capBytes, options.fallocatePath ?? 'fallocate');
  }

  /** Starts watching a running job's directory (which must exist). A job already watched is left as it is. */
  watch(jobId: string, dir: string): void {
    if (this.#jobs.has(jobId)) return;
    const job = this.#track(jobId, dir);
    try {
      job.watcher = watch(dir, (_event, name) => {
        if (name === null || STREAM_FILES.has(name)) this.#observe(job);
      });
    } catch (err) {
      this.#jobs.delete(jobId);
      throw err;
    }
    job.watcher.on('error', (err) => this.#report(err, jobId));
    this.#observe(job); // bytes written before the watch began raised no event
  }

  /**
   * Seals a job whose main process has exited: one last observation, the watch closed, followers
   * told that no more bytes will come. Idempotent. Given `dir`, it also seals a job that was never
   * watched (one that ended while no server ran), so that the index covers every byte.
   */
  finish(jobId: string, dir?: string): Promise<void> {
    let job = this.#jobs.get(jobId);
    if (!job) {
      if (dir === undefined) return Promise.resolve();
      job = this.#track(jobId, dir);
    }
    job.finishing ??= this.#seal(job);
    return job.finishing;
  }

  /** Current byte counts (logical sizes) of a job's streams, by watched job id or by directory. */
  sizes(jobIdOrDir: string): Promise<OutputBytes> {
    const dir = this.#jobs.get(jobIdOrDir)?.dir ?? (jobIdOrDir.includes('/') ? jobIdOrDir : undefined);
    if (dir === undefined) {
      return Promise.reject(new Error(`${jobIdOrDir} is neither a watched job nor a directory path`));
    }
    return readOutputSizes(dir);
  }

  /**
   * Calls `listener` after each observation that found new bytes, and once with `output:finish`.
   * Returns the unsubscribe function, or undefined when the job is not watched: it has finished.
   */
  subscribe(jobId: string, listener: OutputListener): (() => void) | undefined {
    const job = this.#jobs.get(jobId);
    if (!job) return undefined;
    job.listeners.add(listener);
    return () => {
      job.listeners.delete(listener);
    };
  }

  isWatching(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  /** Followers' listeners, for one job or all of them (leak checks). */
  listenerCount(jobId?: string): number {
    const jobs = jobId === undefined ? [...this.#jobs.values()] : [this.#jobs.get(jobId)];
    return jobs.reduce((count, job) => count + (job?.listeners.size ?? 0), 0);
  }

  /** Kernel watches currently open. */
  get watchCount(): number {
    return [...this.#jobs.values()].filter((job) => job.watcher).length;
  }

  /**
   * Closes every watch. Jobs are not marked finished (they outlive the server); their followers
   * get no more notices and end only when aborted. An observation in flight completes on its own.
   */
  close(): void {
    for (const job of this.#jobs.values()) {
      job.watcher?.close();
      job.watcher = undefined;
    }
    this.#jobs.clear();
  }

  #track(jobId: string, dir: string): Watched {
    const retention = newJobRetention();
    const job: Watched = { jobId, dir, listeners: new Set(), watcher: undefined, again: false, retention };
    this.#jobs.set(jobId, job);
    return job;
  }

  #observe(job: Watched): void {
    if (job.observing) {
      job.again = true;
      return;
    }
    job.observing = this.#observeUntilQuiet(job).finally(() => {
      job.observing = undefined;
    });
  }

  async #observeUntilQuiet(job: Watched): Promise<void> {
    do {
      job.again = false;
      await this.#observeOnce(job);
    } while (job.again);
  }

  async #observeOnce(job: Watched): Promise<void> {
    try {
      const sizes = await readOutputSizes(job.dir);
      const { grew } = await appendObserved(outputPaths(job.dir).combinedIndex, sizes);
      await this.#retention.advance(job.dir, sizes, job.retention);
      if (grew) this.#notify(job, 'output:grow');
      await this.#retention.punch(job.dir, job.retention);
    } catch (err) {
      this.#report(err, job.jobId);
    }
  }

  async #seal(job: Watched): Promise<void> {
    job.watcher?.close();
    job.watcher = undefined;
    while (job.observing) await job.observing;
    await this.#observeOnce(job);
    if (this.#jobs.get(job.jobId) === job) this.#jobs.delete(job.jobId);
    this.#notify(job, 'output:finish');
    job.listeners.clear();
  }

  #notify(job: Watched, notice: OutputNotice): void {
    for (const listener of [...job.listeners]) {
      try {
        listener(notice);
      } catch (err) {
        this.#report(err, job.jobId);
      }
    }
  }

  #report(err: unknown, jobId: string): void {
    this.#onError(err instanceof Error ? err : new Error(String(err)), jobId);
  }
}
