import { statSync } from 'node:fs';
import { type Clock, type ClockTimer, systemClock } from '../core/clock.ts';
import { ValidationError } from '../core/errors.ts';
import type { OutputBytes, OutputStream } from '../core/job.ts';
import type { BatchSizes } from './batch-sizes.ts';
import { ASYNC_FILES, SYNC_FILES } from './file-access.ts';
import { HeldFiles } from './held-files.ts';
import { appendObserved, type Observation } from './index-appender.ts';
import { outputPaths, readOutputSizes, readOutputSizesSync } from './output-files.ts';
import { type ReadOutputOptions, readOutput } from './output-reader.ts';
import type { OutputListener, OutputNotice, OutputRead } from './output-types.ts';
import { readKeptWindow, readKeptWindowSync, streamSizes } from './retention.ts';
import { RetentionEnforcer } from './retention-enforcer.ts';
import { newTracked, SWEEP_MAX_MS, SWEEP_MIN_MS, type Tracked } from './tracked-job.ts';
import { watchStreams } from './watch-streams.ts';

export interface OutputMonitorOptions {
  /** Each stream keeps at most this many of its newest bytes; `Infinity` keeps everything. */
  readonly capBytes: number;
  /**
   * Told about failed observations and punches (with the job's id; without one for a failure of the
   * sweep as a whole); the monitor carries on either way.
   */
  readonly onError?: (err: Error, jobId?: string) => void;
  /**
   * Told when a job truncated one of its own output files (`echo x > /dev/stderr`): the stream had
   * reached `at` bytes, the bytes of it still in the file were lost, and what the file holds now
   * follows at `at` (readers see a `truncated` marker). The server logs it.
   */
  readonly onTruncated?: (truncation: OutputTruncation) => void;
  /** The fallocate(1) to run (default: `fallocate` on PATH). */
  readonly fallocatePath?: string;
  /**
   * A file of this monitor's, on the jobs' filesystem, that holds a little room for retention
   * (`RetentionEnforcer`): given back when a full disk refuses a kept window's move, made again
   * once a punch has freed the disk. None: a full disk can keep a job's window from moving.
   */
  readonly spareFile?: string;
  /** Timers of the sweep that observes jobs nobody follows (default: the system clock). */
  readonly clock?: Clock;
  /**
   * How the sweep reads the sizes of the jobs due: all of them in one call off the event loop
   * (`loadBatchSizes`, the server's), or, when absent, two synchronous stats per job on it.
   */
  readonly batchSizes?: BatchSizes;
}

/** A job truncated one of its own output files (`OutputMonitorOptions.onTruncated`). */
export interface OutputTruncation {
  readonly jobId: string;
  readonly stream: OutputStream;
  /** The stream's end when the truncation was seen: its file now continues the stream from here. */
  readonly at: number;
  /** What the file held when the truncation was seen: bytes written after it. */
  readonly fileBytes: number;
}

/** The name of the engine's spare file (`OutputMonitorOptions.spareFile`) in its data directory. */
export const RETENTION_SPARE_FILE = '.retention-spare';

export { SWEEP_MAX_MS, SWEEP_MIN_MS };

/**
 * Observes the output of running jobs. A job nobody follows costs nothing while it writes: no
 * kernel watch, no event per write; a sweep on the clock observes it now and then (every
 * `SWEEP_MIN_MS`, backing off to `SWEEP_MAX_MS` while it is quiet), which keeps retention within
 * the cap plus what a job can write in that time. Given `batchSizes`, a sweep reads the sizes of
 * all the jobs due in one call off the event loop and observes only those that grew. A followed
 * job gets one kernel watch (on its directory), opened by its first follower and closed when its
 * last one leaves, however many it has; its files are held open as long (`HeldFiles`). The sweep
 * still looks at it every `SWEEP_MAX_MS` (the watch can miss a write: an inotify queue that
 * overflowed), once per job however many followers it has. Each observation reads both streams' sizes (stderr first: see `STAT_ORDER`), appends what grew to the
 * combined index, enforces retention, then tells the job's followers. Observations of a job never
 * overlap: events during one ask for one more, so a job writing fast wakes its followers once per
 * observation, not once per write; with many followers their wakeups are spaced out further
 * (`OutputListeners`). Their reads of the same page are shared (`SharedReads`) and synchronous,
 * through the held files. A job nobody follows holds no descriptor between observations.
 * One monitor per engine: it is the only writer of each job's index and kept window.
 */
export class OutputMonitor {
  readonly #onError: (err: Error, jobId?: string) => void;
  readonly #onTruncated: (truncation: OutputTruncation) => void;
  readonly #retention: RetentionEnforcer;
  readonly #clock: Clock;
  readonly #jobs = new Map<string, Tracked>();
  readonly #batchSizes: BatchSizes | undefined;
  #sweep: ClockTimer | undefined;
  /** The sweep's batch of sizes in flight: no timer meanwhile. */
  #sweeping: Promise<void> | undefined;
  /** The last sweep: its batch, then the observations it started (`swept`). */
  #lastSweep: Promise<void> = Promise.resolve();

  constructor(options: OutputMonitorOptions) {
    const { capBytes } = options;
    if (!(capBytes === Number.POSITIVE_INFINITY || (Number.isSafeInteger(capBytes) && capBytes > 0))) {
      throw ValidationError.expected('capBytes', 'a positive integer or Infinity', capBytes);
    }
    this.#onError = options.onError ?? (() => {});
    this.#onTruncated = options.onTruncated ?? (() => {});
    this.#retention = new RetentionEnforcer(
      capBytes,
      options.fallocatePath ?? 'fallocate',
      options.spareFile,
    );
    this.#clock = options.clock ?? systemClock;
    this.#batchSizes = options.batchSizes;
  }

  /**
   * Starts tracking a running job (its directory must exist): no kernel watch until it has a
   * follower; the sweep observes it meanwhile. A job already tracked is left as it is. An adopted
   * job may have written while no server ran: `refresh` it.
   */
  watch(jobId: string, dir: string): void {
    if (this.#jobs.has(jobId)) return;
    // A directory that is gone (ENOENT) is refused here, as a kernel watch on it would be.
    statSync(dir);
    this.#track(jobId, dir);
    this.#armSweep();
  }

  /**
   * Seals a job whose main process has exited: one last observation, the watch closed, followers
   * told that no more bytes will come. Idempotent. Given `dir`, it also seals a job that was never
   * watched (one that ended while no server ran), so that the index covers every byte. Resolves
   * with the streams' final sizes as that observation found them (what `sizes` would read, without
   * reading again), or undefined when it could not observe them or the job is not tracked.
   * Rejects when the index could not take the last bytes (a full disk): the job then stays tracked
   * and its followers are not told it finished, since the `all` view would miss those bytes for
   * good; the caller calls `finish` again until it resolves (the supervisor retries it).
   */
  finish(jobId: string, dir?: string): Promise<OutputBytes | undefined> {
    let job = this.#jobs.get(jobId);
    if (!job) {
      if (dir === undefined) return Promise.resolve(undefined);
      job = this.#track(jobId, dir);
    }
    if (!job.finishing || job.sealFailed) {
      job.sealFailed = false;
      job.finishing = this.#seal(job);
    }
    return job.finishing;
  }

  /**
   * Makes the spare file (`spareFile`), at the server's start: never rejects, a disk already full
   * is told through `onError`, and the file is made once a punch has freed room.
   */
  async prepareSpare(): Promise<void> {
    try {
      await this.#retention.prepareSpare();
    } catch (err) {
      this.#report(err);
    }
  }

  /**
   * Current byte counts (logical sizes: stream offsets, counting bytes dropped by retention or by a
   * job that truncated its file) of a job's streams, by tracked job id or by directory.
   */
  async sizes(jobIdOrDir: string): Promise<OutputBytes> {
    const dir = this.#jobs.get(jobIdOrDir)?.dir ?? (jobIdOrDir.includes('/') ? jobIdOrDir : undefined);
    if (dir === undefined) {
      throw new Error(`${jobIdOrDir} is neither a watched job nor a directory path`);
    }
    const [files, kept] = await Promise.all([readOutputSizes(dir), readKeptWindow(dir)]);
    return streamSizes(files, kept);
  }

  /**
   * Brings a tracked job's combined index up to what its streams hold now (an unfollowed job is
   * otherwise observed only by the sweep), so that a read of what exists sees every byte written
   * before it. Resolves at once for a job not tracked.
   */
  async refresh(jobId: string): Promise<void> {
    const job = this.#jobs.get(jobId);
    if (!job) return;
    // Being sealed: the seal's own last observation covers what the streams hold.
    if (job.finishing) {
      await job.finishing.catch(() => undefined);
      return;
    }
    this.#observe(job);
    await job.observing;
  }

  /**
   * Reads a page of a job's output, shared with every other reader of the same page of a tracked
   * job since its last growth: a thousand followers woken by the same write cause one read, and
   * get the same events (whose buffers they must not modify).
   */
  read(jobId: string, dir: string, options: ReadOutputOptions): Promise<OutputRead> {
    const job = this.#jobs.get(jobId);
    if (!job) return readOutput(dir, options);
    // A tracked job's reads are shared by key, whoever asks: all read its own directory, as the
    // monitor knows it (its held files answer for those paths only).
    const own = job.dir;
    const key = `${options.selector} ${options.cursor} ${options.limitBytes}`;
    // A follower further behind than the live tail reads through the thread pool, since its pages
    // may have to come from the disk, which the event loop must not wait for.
    if (!isLiveTail(job.observed, options))
      return job.shared.get(key, () => readOutput(own, options, ASYNC_FILES));
    // The live tail, just written and still in the page cache, is read synchronously (see
    // SYNC_FILES), through the files a followed job holds open.
    const held = job.held;
    if (!held) return job.shared.get(key, () => readOutput(own, options, SYNC_FILES));
    return job.shared.get(key, () => {
      const release = held.lease();
      return readOutput(own, options, held.files).finally(release);
    });
  }

  /**
   * Calls `listener` after each observation that found new bytes, and once with `output:finish`.
   * The job's first listener opens its kernel watch (and observes at once: bytes written before
   * raised no event); its last one leaving closes it. Returns the unsubscribe function, or
   * undefined when the job is not tracked: it has finished.
   */
  subscribe(jobId: string, listener: OutputListener): (() => void) | undefined {
    const job = this.#jobs.get(jobId);
    if (!job) return undefined;
    job.listeners.add(listener);
    if (job.listeners.size === 1 && !job.finishing && !job.held) {
      job.held = new HeldFiles(job.dir, () => job.retention.kept);
      this.#openWatch(job);
    }
    return () => {
      if (!job.listeners.delete(listener) || job.listeners.size > 0) return;
      this.#closeWatch(job);
      this.#release(job);
      if (this.#jobs.get(jobId) === job && !job.finishing) {
        job.sweepEveryMs = SWEEP_MIN_MS;
        job.sweepDueAt = this.#now() + SWEEP_MIN_MS;
        this.#armSweep();
      }
    };
  }

  /**
   * Resolves once the last sweep through `batchSizes` is over: its sizes read and the observations
   * it started done (at once when there was none; without `batchSizes`, at once). The sweep goes on
   * by its timer meanwhile. For tests: an observation goes on as long as its job keeps writing.
   */
  async swept(): Promise<void> {
    await this.#lastSweep;
  }

  isWatching(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  /** Followers' listeners, for one job or all of them (leak checks). */
  listenerCount(jobId?: string): number {
    const jobs = jobId === undefined ? [...this.#jobs.values()] : [this.#jobs.get(jobId)];
    return jobs.reduce((count, job) => count + (job?.listeners.size ?? 0), 0);
  }

  /** Kernel watches currently open (one per followed running job). */
  get watchCount(): number {
    return [...this.#jobs.values()].filter((job) => job.watcher).length;
  }

  /**
   * Closes every watch and the sweep. Jobs are not marked finished (they outlive the server); their
   * followers get no more notices and end only when aborted. An observation in flight completes.
   */
  close(): void {
    // A sweep in flight finds no job tracked when its sizes come, and arms no timer.
    this.#sweep?.clear();
    this.#sweep = undefined;
    for (const job of this.#jobs.values()) {
      this.#closeWatch(job);
      this.#release(job);
      job.listeners.clear();
    }
    this.#jobs.clear();
  }

  #track(jobId: string, dir: string): Tracked {
    const job = newTracked(jobId, dir, this.#clock, (err) => this.#report(err, jobId));
    this.#jobs.set(jobId, job);
    return job;
  }

  #openWatch(job: Tracked): void {
    try {
      job.watcher = watchStreams(job.dir, () => this.#observe(job));
      const watcher = job.watcher;
      watcher.on('error', (err) => {
        this.#report(err, job.jobId);
        // Node closes a watcher that errs: without this the job, still marked as watched, would be
        // skipped by the sweep and its followers told of nothing more. The sweep takes it over.
        if (job.watcher !== watcher) return;
        this.#closeWatch(job);
        job.sweepEveryMs = SWEEP_MIN_MS;
        job.sweepDueAt = this.#now();
        this.#armSweep();
      });
    } catch (err) {
      // No watch (inotify limits, say): the sweep goes on observing it, at its quickest.
      job.watcher = undefined;
      job.sweepEveryMs = SWEEP_MIN_MS;
      this.#report(err, job.jobId);
    }
    this.#observe(job);
  }

  #closeWatch(job: Tracked): void {
    job.watcher?.close();
    job.watcher = undefined;
  }

  /** Lets go of a job's held files: closed now, or once the work that leased them is over. */
  #release(job: Tracked): void {
    job.held?.close();
    job.held = undefined;
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  /** Arms the sweep timer while some tracked job is not being sealed (once the sweep in flight is over). */
  #armSweep(): void {
    if (this.#sweep || this.#sweeping) return;
    let due = Number.POSITIVE_INFINITY;
    for (const job of this.#jobs.values()) {
      if (!job.finishing) due = Math.min(due, job.sweepDueAt);
    }
    if (due === Number.POSITIVE_INFINITY) return;
    this.#sweep = this.#clock.setTimer(
      () => {
        this.#sweep = undefined;
        this.#sweepDue();
        this.#armSweep();
      },
      Math.max(SWEEP_MIN_MS, due - this.#now()),
    );
  }

  #sweepDue(): void {
    const now = this.#now();
    const due: Tracked[] = [];
    for (const job of this.#jobs.values()) {
      if (job.finishing || job.sweepDueAt > now) continue;
      // A followed job is swept too, at the slowest period, whatever its number of followers: its
      // watch can miss a write (an inotify queue that overflowed drops events, and libuv drops the
      // overflow notice), and a job that then goes quiet would keep its last bytes from them.
      job.sweepDueAt = now + (job.watcher ? SWEEP_MAX_MS : job.sweepEveryMs);
      due.push(job);
    }
    if (due.length === 0) return;
    if (!this.#batchSizes) {
      for (const job of due) this.#observe(job, true);
      return;
    }
    const { promise: observed, resolve } = Promise.withResolvers<void>();
    this.#lastSweep = observed;
    // The next sweep waits for this one's sizes, not for the observations they start: one of them
    // hung (a punch on a stalled disk) holds up only its own job, as without the batch.
    this.#sweeping = this.#sweepThrough(this.#batchSizes, due)
      .then(
        ({ observations }) => {
          // Not returned: the next sweep must not wait for them.
          void observations.then(resolve, resolve);
        },
        (err: unknown) => {
          this.#report(err);
          resolve();
        },
      )
      .finally(() => {
        this.#sweeping = undefined;
        this.#armSweep();
      });
  }

  /**
   * Reads the sizes of the jobs due in one batch, off the event loop, and starts observations of
   * only those that grew: a quiet job costs the event loop no stat. A job finishing or untracked
   * by the time the sizes come is left to what observes it now. Should the batch fail as
   * a whole, every job due is observed the synchronous way, as without it. Resolves once the sizes
   * are in, with the observations started (which never reject).
   */
  async #sweepThrough(
    batchSizes: BatchSizes,
    due: readonly Tracked[],
  ): Promise<{ observations: Promise<void> }> {
    let results: readonly (OutputBytes | Error)[] | undefined;
    const fileStarts = due.map((job) => job.retention.kept?.fileStart);
    try {
      results = await batchSizes(due.map((job) => job.dir));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.#report(
        new Error(`the sweep could not read ${due.length} jobs' sizes at once (${reason}); observing each`),
      );
    }
    const observing: Promise<void>[] = [];
    due.forEach((job, i) => {
      // A truncation recorded while the batch was read makes its sizes meaningless: read afresh.
      const stale = job.retention.kept?.fileStart !== fileStarts[i];
      if (this.#jobs.get(job.jobId) !== job || job.finishing) return;
      const files = stale ? undefined : results?.[i];
      if (files instanceof Error) {
        this.#report(files, job.jobId);
        this.#backOff(job, false);
        return;
      }
      const sizes = files && job.retention.kept ? streamSizes(files, job.retention.kept) : undefined;
      // Sizes no further than what the job's last observation saw (a refresh may have come back
      // first with newer ones): nothing to do. Smaller ones (a truncated file) are observed afresh.
      if (sizes && !job.observing && !isAhead(sizes, job.observed) && !isBehind(sizes, job.observed)) {
        this.#backOff(job, false);
        return;
      }
      // One in flight already (a refresh) takes this in with one more round; only the observations
      // started here are this sweep's.
      const started = !job.observing;
      this.#observe(job, true, sizes && !isBehind(sizes, job.observed) ? sizes : undefined);
      if (started && job.observing) observing.push(job.observing);
    });
    return { observations: Promise.all(observing).then(() => undefined) };
  }

  /**
   * After a swept observation: a quiet job is swept less and less often; one that writes, or is
   * followed, at the quickest.
   */
  #backOff(job: Tracked, grew: boolean): void {
    job.sweepEveryMs =
      grew || job.listeners.size > 0 ? SWEEP_MIN_MS : Math.min(2 * job.sweepEveryMs, SWEEP_MAX_MS);
  }

  /** `sizes`: what the streams held moments ago (the sweep's batch); else the observation reads them. */
  #observe(job: Tracked, swept = false, sizes?: OutputBytes): void {
    // Once the seal began, its last observation is the only one: another beside it would append to
    // the index and write the kept window (one temporary file) at the same time as it.
    if (job.finishing) return;
    if (job.observing) {
      job.again = true;
      return;
    }
    job.observing = this.#observeUntilQuiet(job, swept, sizes).finally(() => {
      job.observing = undefined;
    });
  }

  async #observeUntilQuiet(job: Tracked, swept: boolean, sizes?: OutputBytes): Promise<void> {
    let known = sizes;
    do {
      job.again = false;
      const { grew } = await this.#observeOnce(job, known);
      known = undefined;
      if (swept) this.#backOff(job, grew);
    } while (job.again);
  }

  /**
   * Given `known` sizes (read moments ago), observes up to them; else reads them now. Resolves with
   * `sizes`: what the streams held, as far as the index and retention now cover them.
   */
  async #observeOnce(
    job: Tracked,
    known?: OutputBytes,
    sealing = false,
  ): Promise<{ grew: boolean; sizes?: OutputBytes }> {
    // Whether the index covers the sizes read: the seal fails without it (see `finish`).
    let indexed = false;
    try {
      const held = job.held;
      const release = held?.lease();
      let sizes: OutputBytes;
      let grew = false;
      let notIndexed: unknown;
      try {
        // Where each file starts in its stream: read once per job (the monitor alone moves it).
        // Synchronously, as the sizes are: an await before them would let a job write between
        // an event and the sizes read for it, merging writes the index should keep in order.
        job.retention.kept ??= readKeptWindowSync(job.dir);
        const fresh = (): OutputBytes =>
          streamSizes(held?.sizes() ?? readOutputSizesSync(job.dir), job.retention.kept);
        // Known sizes may be older than an observation that completed meanwhile: never go back.
        sizes = known ? furthest(known, job.observed) : fresh();
        // Nothing written since the last complete observation: the sweep of a quiet job (most of
        // thousands running) is two stats, not an index open and retention's checks. A smaller
        // size goes on: the job may have truncated its file (`#appendChecked`).
        if (!isAhead(sizes, job.observed) && !isBehind(sizes, job.observed)) return { grew: false, sizes };
        const before = sizes;
        ({ grew, sizes } = await this.#appendChecked(job, sizes, fresh).then(
          (appended) => {
            indexed = true;
            return appended;
          },
          (err: unknown) => {
            notIndexed = err;
            return { grew: false, sizes: before };
          },
        ));
      } finally {
        release?.();
      }
      try {
        // Even when the index could not take the new bytes: on a full disk (a new block of the
        // index, or its first), the punch that follows is what makes room for it. Meanwhile a
        // window past what the index covers shows the combined view as one marker up to its end,
        // skipping no byte that the view keeps once the index has caught up.
        await this.#retention.advance(job.dir, sizes, job.retention);
      } finally {
        // Told even when the kept window could not move: the index holds the new bytes, and
        // followers (and reads shared from before) would otherwise wait for the job's next write.
        // The window moves at the next observation, which finds the sizes still ahead.
        if (grew) this.#notify(job, 'output:grow');
      }
      await this.#retention.punch(job.dir, job.retention);
      if (notIndexed !== undefined) {
        // Once more, now that the punch may have made room; failing again, the next observation
        // tries (the sizes are still ahead of what was observed).
        ({ grew } = await this.#append(job, sizes));
        indexed = true;
        if (grew) this.#notify(job, 'output:grow');
      }
      job.observed = sizes;
      return { grew, sizes };
    } catch (err) {
      // Reported by the seal's caller, which tries again: not once per try here. Only a disk out
      // of room, which frees up; any other failure (a corrupt file) would fail every try, and hold
      // the job's end for ever: reported, and the seal goes on with what the index holds.
      if (sealing && !indexed && isNoSpace(err)) throw err;
      this.#report(err, job.jobId);
      return { grew: false };
    }
  }

  /**
   * `#append`, then, for a stream whose size was below what the index covers, tells a stale size
   * from a truncated file by sizes read now: only those can say that a file shrank, since
   * observations of a job never overlap and the index covers what the last one read. A truncated
   * file restarts its stream where the index ends (`RetentionEnforcer.restart`), on disk before what
   * it holds now is indexed after that. Resolves with the sizes the index now covers.
   */
  async #appendChecked(
    job: Tracked,
    sizes: OutputBytes,
    fresh: () => OutputBytes,
  ): Promise<{ grew: boolean; sizes: OutputBytes }> {
    const observation = await this.#append(job, sizes);
    if (!observation.behind?.length) return { grew: observation.grew, sizes };
    let now = fresh();
    const shrunk = observation.behind.filter((stream) => now[stream] < observation.observed[stream]);
    if (shrunk.length > 0) {
      await this.#retention.restart(job.dir, shrunk, observation.observed, job.retention);
      now = fresh();
      for (const stream of shrunk) {
        const at = observation.observed[stream];
        this.#onTruncatedSafely({ jobId: job.jobId, stream, at, fileBytes: now[stream] - at });
      }
    }
    const again = await this.#append(job, furthest(now, observation.observed));
    // A restart changed the views (a marker where the lost bytes were) even with nothing new yet.
    return { grew: observation.grew || again.grew || shrunk.length > 0, sizes: again.observed };
  }

  #onTruncatedSafely(truncation: OutputTruncation): void {
    try {
      this.#onTruncated(truncation);
    } catch (err) {
      this.#report(err, truncation.jobId);
    }
  }

  /** Appends to the job's index what the streams grew by, through its held files if it has them. */
  async #append(job: Tracked, sizes: OutputBytes): Promise<Observation> {
    const held = job.held?.closed ? undefined : job.held;
    const release = held?.lease();
    try {
      return await (held?.append(sizes) ?? appendObserved(outputPaths(job.dir).combinedIndex, sizes));
    } finally {
      release?.();
    }
  }

  async #seal(job: Tracked): Promise<OutputBytes | undefined> {
    this.#closeWatch(job);
    this.#release(job);
    while (job.observing) await job.observing;
    let sizes: OutputBytes | undefined;
    try {
      ({ sizes } = await this.#observeOnce(job, undefined, true));
    } catch (err) {
      // Still `finishing`: no other observation, no watch, no sweep of it until the next seal.
      job.sealFailed = true;
      throw err;
    }
    if (this.#jobs.get(job.jobId) === job) this.#jobs.delete(job.jobId);
    this.#notify(job, 'output:finish');
    job.listeners.clear();
    return sizes;
  }

  /**
   * Gives up a seal that failed (`finish` rejected) without trying it again: the job is untracked
   * and its followers are told it finished, with what the index holds (its node relinquishes it).
   */
  abandon(jobId: string): void {
    const job = this.#jobs.get(jobId);
    if (job === undefined) return;
    this.#jobs.delete(jobId);
    this.#closeWatch(job);
    this.#release(job);
    this.#notify(job, 'output:finish');
    job.listeners.clear();
  }

  #notify(job: Tracked, notice: OutputNotice): void {
    // Reads started before this growth may have missed it: later readers start their own.
    job.shared.clear();
    job.listeners.notify(notice);
  }

  #report(err: unknown, jobId?: string): void {
    try {
      this.#onError(err instanceof Error ? err : new Error(String(err)), jobId);
    } catch {
      // A listener that throws must not end an observation or a sweep half-way: told is told.
    }
  }
}

/**
 * Whether some stream holds more than a job's last complete observation saw: else there is nothing
 * to index or trim. Before its first, a job has observed nothing, which is what streams of 0 bytes
 * hold (and what their index, if a past server made one, covers).
 */
function isAhead(sizes: OutputBytes, observed: OutputBytes = NOTHING): boolean {
  return sizes.stdout > observed.stdout || sizes.stderr > observed.stderr;
}

/** Whether some stream is smaller than a job's last complete observation saw: stale, or truncated. */
function isBehind(sizes: OutputBytes, observed: OutputBytes = NOTHING): boolean {
  return sizes.stdout < observed.stdout || sizes.stderr < observed.stderr;
}

/** Each stream's larger size: stream offsets never go back, so the larger is the newer. */
function furthest(sizes: OutputBytes, observed: OutputBytes = NOTHING): OutputBytes {
  return { stdout: Math.max(sizes.stdout, observed.stdout), stderr: Math.max(sizes.stderr, observed.stderr) };
}

const NOTHING: OutputBytes = { stdout: 0, stderr: 0 };

/** How far behind the observed end a read still counts as the live tail. */
export const LIVE_TAIL_BYTES = 1024 * 1024;

/** Whether a read starts within `LIVE_TAIL_BYTES` of what the last observation saw of its view. */
export function isLiveTail(observed: OutputBytes | undefined, options: ReadOutputOptions): boolean {
  if (observed === undefined) return false;
  const end = options.selector === 'all' ? observed.stdout + observed.stderr : observed[options.selector];
  return end - options.cursor <= LIVE_TAIL_BYTES;
}

/** A disk (or quota) out of room: what a seal waits out, trying again. */
function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
