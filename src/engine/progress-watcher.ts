import { type FSWatcher, watch } from 'node:fs';
import type { Clock, ClockTimer } from '../core/clock.ts';
import type { Job, JobAccount, JobProgress } from '../core/job.ts';
import { PROGRESS_LINE_BYTES, parseProgressLine } from '../core/progress.ts';
import { type JobIoPaths, readProgressBytes } from '../runtime/job-io.ts';
import type { JobStore } from '../store/job-store.ts';

/** Bytes of a progress file read per observation: its tail, where the latest line is. */
const READ_BYTES = 64 * 1024;
/** How often a job is looked at when its directory cannot be watched (inotify watches exhausted). */
export const PROGRESS_POLL_MS = 1000;
/**
 * How long after its start a new job's directory is first looked at and watched (`watch`'s
 * `afterMs`). Most jobs report no progress and many end within it: each such job then costs
 * the event loop neither a kernel watch set and removed (two system calls, a handle) nor a look
 * for a file it never wrote; its end reads what it wrote in any case (`finish`). A job that
 * reports from its first moment shows it at most this late, a tenth of the poll above.
 */
export const PROGRESS_WATCH_AFTER_MS = 100;

export interface ProgressWatcherDeps {
  readonly store: JobStore;
  readonly clock: Clock;
  readonly paths: (id: string) => JobIoPaths;
  /** A job whose latest progress was just recorded. */
  readonly changed: (job: Job) => void;
  readonly onError: (err: Error, jobId: string) => void;
}

interface Watched {
  readonly id: string;
  readonly account: JobAccount | null;
  readonly paths: JobIoPaths;
  /** Bytes of the file read so far. */
  offset: number;
  /** The start of a line not ended yet. */
  partial: string;
  watcher?: FSWatcher;
  /** The wait before the first look (`afterMs`), then the poll's, if any. */
  timer?: ClockTimer;
  observing?: Promise<void>;
  /** The last read and the end of the watch (`finish`), once begun: a second call waits for it. */
  finishing?: Promise<void>;
  again: boolean;
  closed: boolean;
}

/**
 * Follows the progress files of running jobs (`JOBWORKER_PROGRESS`): one kernel watch per job, on
 * its own io directory (set a moment after a new job starts: `PROGRESS_WATCH_AFTER_MS`), so a job
 * that reports nothing costs next to nothing, and one that writes often is
 * read once per observation (observations of a job never overlap: writes during one ask for one
 * more, as in the output monitor). Only the last valid line of what was read is recorded, and
 * reported to `changed`. A directory that cannot be watched is polled on the clock instead.
 */
export class ProgressWatcher {
  readonly #deps: ProgressWatcherDeps;
  readonly #jobs = new Map<string, Watched>();
  /** Set by `close`: a job whose start is recorded after it is not watched. */
  #closed = false;

  constructor(deps: ProgressWatcherDeps) {
    this.#deps = deps;
  }

  /**
   * Starts following a running job's progress (idempotent): what it wrote already is read at once,
   * or after `afterMs` on the clock (a job just started: see `PROGRESS_WATCH_AFTER_MS`), and from
   * then on as it writes.
   */
  watch(job: Job, afterMs = 0): void {
    if (this.#closed || this.#jobs.has(job.id)) return;
    const w: Watched = {
      id: job.id,
      account: job.spec.account,
      paths: this.#deps.paths(job.id),
      offset: 0,
      partial: '',
      again: false,
      closed: false,
    };
    this.#jobs.set(job.id, w);
    if (afterMs > 0) {
      w.timer = this.#deps.clock.setTimer(() => {
        w.timer = undefined;
        this.#start(w);
      }, afterMs);
    } else this.#start(w);
  }

  /** Sets the job's kernel watch (or the poll, where there is none) and looks at once. */
  #start(w: Watched): void {
    if (w.closed) return;
    try {
      w.watcher = watch(w.paths.dir, { persistent: false }, (_event, name) => {
        if (name === null || name === 'progress.jsonl') this.#observe(w);
      });
      w.watcher.on('error', () => this.#poll(w));
    } catch {
      // No directory (a job from before io directories) or no watch left: look now and then.
      this.#poll(w);
    }
    this.#observe(w);
  }

  /** Jobs followed now. */
  get size(): number {
    return this.#jobs.size;
  }

  /**
   * Reads the job's last lines and stops following it: its end is being recorded. Called again
   * meanwhile (the job was relinquished during its end), it waits for that one read.
   */
  finish(id: string): Promise<void> {
    const w = this.#jobs.get(id);
    if (!w) return Promise.resolve();
    w.finishing ??= this.#finish(w);
    return w.finishing;
  }

  async #finish(w: Watched): Promise<void> {
    // Closed before the last read, not after: the wait for the first look (or a kernel event)
    // coming during it must start neither a watch nor an observation beside this one.
    this.#quiet(w);
    await w.observing;
    await this.#observeOnce(w, true).catch((err: unknown) => this.#deps.onError(err as Error, w.id));
    this.#stop(w);
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#jobs.values()) this.#stop(w);
  }

  /** Ends the job's watch, poll and wait, and any observation loop after its current pass. */
  #quiet(w: Watched): void {
    w.closed = true;
    w.watcher?.close();
    w.watcher = undefined;
    w.timer?.clear();
    w.timer = undefined;
  }

  #stop(w: Watched): void {
    this.#quiet(w);
    this.#jobs.delete(w.id);
  }

  #poll(w: Watched): void {
    w.watcher?.close();
    w.watcher = undefined;
    const arm = (): void => {
      if (w.closed) return;
      w.timer = this.#deps.clock.setTimer(() => {
        this.#observe(w);
        arm();
      }, PROGRESS_POLL_MS);
    };
    if (!w.timer) arm();
  }

  #observe(w: Watched): void {
    if (w.closed) return;
    if (w.observing) {
      w.again = true;
      return;
    }
    w.observing = (async () => {
      try {
        do {
          w.again = false;
          await this.#observeOnce(w);
        } while (w.again && !w.closed);
      } catch (err) {
        this.#deps.onError(err as Error, w.id);
      } finally {
        w.observing = undefined;
      }
    })();
  }

  /**
   * One read of the last of what the job appended; its last valid line is recorded. `final`: the
   * job has ended, so what follows its last newline (a last line written without one, read now or
   * before) is a whole line too: nothing is coming to end it.
   */
  async #observeOnce(w: Watched, final = false): Promise<void> {
    const read = await readProgressBytes(w.paths, w.account, w.offset, READ_BYTES);
    let text = '';
    if (read && read.bytes.length > 0) {
      text = read.bytes.toString('utf8');
      if (read.from !== w.offset) {
        // Truncated, or a stretch was skipped: what comes before the first newline may be the end
        // of a line whose start was not read, so it is not a line.
        w.partial = '';
        const newline = text.indexOf('\n');
        if (read.from > 0) text = newline === -1 ? '' : text.slice(newline + 1);
      }
      w.offset = read.from + read.bytes.length;
    } else if (!final || w.partial === '') return;
    const lines = (w.partial + text).split('\n');
    const rest = final ? '' : (lines.pop() ?? '');
    // A line longer than any valid one is dropped as it comes, so a job cannot grow our memory.
    w.partial = rest.length > PROGRESS_LINE_BYTES ? '' : rest;
    let latest: JobProgress | undefined;
    const at = this.#deps.clock.now();
    for (let i = lines.length - 1; i >= 0 && latest === undefined; i--) {
      latest = parseProgressLine(lines[i] ?? '', at);
    }
    if (latest) {
      const job = await this.#deps.store.setProgress(w.id, latest);
      if (job) this.#deps.changed(job);
    }
  }
}
