import type { Clock, ClockTimer } from '../core/clock.ts';
import type { OutputListener, OutputNotice } from './output-types.ts';

/** From this many followers of one job on, their wakeups are spaced out (see `OutputListeners`). */
export const FAN_OUT_FOLLOWERS = 50;
/** The least time between two wakeups of a job's followers, per follower (1,000 followers: 20 ms). */
export const WAKE_MS_PER_FOLLOWER = 0.02;

/**
 * The followers' listeners of one job, and when to wake them. Each wakeup of a follower costs the
 * server a read (shared), a pass through its stream and a socket write, however few bytes came.
 * A job writing every few ms to a thousand followers would so cost more CPU than it has and every
 * follower would fall further behind; with many followers (`FAN_OUT_FOLLOWERS`) a growth is told
 * at most once per `n × WAKE_MS_PER_FOLLOWER` ms, each wakeup carrying what came meanwhile. A few
 * followers are told at once. The end (`output:finish`) is always told at once, after any growth
 * still waiting (a follower that hears of the end reads to it anyway).
 */
export class OutputListeners {
  readonly #listeners = new Set<OutputListener>();
  readonly #clock: Clock;
  readonly #onError: (err: unknown) => void;
  #timer: ClockTimer | undefined;
  #lastWakeAt = Number.NEGATIVE_INFINITY;

  constructor(clock: Clock, onError: (err: unknown) => void) {
    this.#clock = clock;
    this.#onError = onError;
  }

  get size(): number {
    return this.#listeners.size;
  }

  add(listener: OutputListener): void {
    this.#listeners.add(listener);
  }

  /** Whether it was there. */
  delete(listener: OutputListener): boolean {
    return this.#listeners.delete(listener);
  }

  /** Tells every listener, at once or (a growth, many followers) at the next allowed time. */
  notify(notice: OutputNotice): void {
    if (notice === 'output:grow' && this.#listeners.size >= FAN_OUT_FOLLOWERS) {
      if (this.#timer) return; // that wakeup will tell of this growth too
      const due = this.#lastWakeAt + this.#listeners.size * WAKE_MS_PER_FOLLOWER;
      const wait = due - this.#now();
      if (wait > 0) {
        this.#timer = this.#clock.setTimer(() => {
          this.#timer = undefined;
          this.#wake('output:grow');
        }, wait);
        return;
      }
    }
    this.#cancel();
    this.#wake(notice);
  }

  /** Forgets every listener and any wakeup waiting. */
  clear(): void {
    this.#cancel();
    this.#listeners.clear();
  }

  #cancel(): void {
    this.#timer?.clear();
    this.#timer = undefined;
  }

  #wake(notice: OutputNotice): void {
    this.#lastWakeAt = this.#now();
    for (const listener of [...this.#listeners]) {
      try {
        listener(notice);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  #now(): number {
    return this.#clock.now().getTime();
  }
}
