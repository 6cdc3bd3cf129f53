import type { Clock, ClockTimer } from '../core/clock.ts';
import type { Job } from '../core/job.ts';

/** The shortest time between two `job:progress` events of one job written to the outbox. */
export const PROGRESS_EVENT_INTERVAL_MS = 1000;

interface Window {
  /** Ends the window: writes what came meanwhile (and opens another), or forgets the job. */
  timer: ClockTimer;
  /** The job as of the latest progress that came in the window, not written yet. */
  latest: Job | undefined;
}

/**
 * Keeps `job:progress` webhook events to one per job per `intervalMs`. A job may report progress
 * as often as it likes (a line per item of a loop), and each event used to become a delivery of
 * the whole job to every receiver that wants it, retried for a day when the receiver is down: any
 * user could fill the store that way. The first progress of a quiet job is written at once; what
 * comes in the window after it is held, and only the latest is written when the window ends (a
 * receiver learns the job's progress as of then, never an older one after a newer). A job's end
 * drops what it held: its `job:finished` carries its last progress.
 */
export class ProgressThrottle {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #write: (job: Job) => Promise<void>;
  readonly #onError: (err: unknown, job: Job) => void;
  readonly #windows = new Map<string, Window>();
  /** Writes of held events under way (no caller waits for them): `settled` does. */
  readonly #writing = new Set<Promise<void>>();

  constructor(options: {
    clock: Clock;
    intervalMs?: number;
    /** Writes the event (the outbox). */
    write: (job: Job) => Promise<void>;
    /** A held event whose write failed when its window ended (no caller waits for it). */
    onError: (err: unknown, job: Job) => void;
  }) {
    this.#clock = options.clock;
    this.#intervalMs = options.intervalMs ?? PROGRESS_EVENT_INTERVAL_MS;
    this.#write = options.write;
    this.#onError = options.onError;
  }

  /** Progress of `job`: written now when its last one is older than the interval, else held. */
  async offer(job: Job): Promise<void> {
    const window = this.#windows.get(job.id);
    if (window) {
      window.latest = job;
      return;
    }
    this.#open(job.id);
    await this.#write(job);
  }

  /** The job ended: what it held is dropped (its end's event tells its last progress). */
  forget(id: string): void {
    this.#windows.get(id)?.timer.clear();
    this.#windows.delete(id);
  }

  /** Drops every window (the server closes; held progress is superseded by the jobs' ends). */
  close(): void {
    for (const window of this.#windows.values()) window.timer.clear();
    this.#windows.clear();
  }

  /** Resolves once the writes of held events under way have ended. */
  async settled(): Promise<void> {
    while (this.#writing.size > 0) await Promise.all(this.#writing);
  }

  /** Jobs with a window open: bounded by the jobs that reported progress in the last interval. */
  get size(): number {
    return this.#windows.size;
  }

  #open(id: string): void {
    const window: Window = {
      latest: undefined,
      timer: this.#clock.setTimer(() => {
        const latest = window.latest;
        this.#windows.delete(id);
        if (latest === undefined) return;
        this.#open(id);
        const writing = this.#write(latest)
          .catch((err: unknown) => this.#onError(err, latest))
          .finally(() => this.#writing.delete(writing));
        this.#writing.add(writing);
      }, this.#intervalMs),
    };
    this.#windows.set(id, window);
  }
}
