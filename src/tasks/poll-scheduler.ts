import { type Clock, type ClockTimer, steadyMs } from '../core/clock.ts';
import { MinHeap } from './min-heap.ts';

/** One pending poll. Set `cancelled` to drop it: it is discarded when it reaches the top. */
export interface PollEntry {
  /**
   * When it is due, on the clock's steady time (`steadyMs`): on the wall clock, one set back by an
   * NTP step would put off every poll for as long.
   */
  readonly dueAt: number;
  cancelled: boolean;
  fire(): void;
}

/**
 * Every poll of every task on ONE timer. Pending polls sit in a min-heap by due time; the timer
 * is armed for the earliest only, so a wake-up costs O(k log n) for the k polls due and nothing
 * when none is (no timer is armed while the heap is empty). Cancelled entries are deleted lazily,
 * when they surface, which keeps cancel O(1).
 */
export class PollScheduler {
  readonly #clock: Clock;
  readonly #heap = new MinHeap<PollEntry>((e) => e.dueAt);
  #timer: ClockTimer | undefined;
  #armedFor = Number.POSITIVE_INFINITY;
  #waking = false;
  #closed = false;
  wakeUps = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Pending entries, cancelled ones not yet discarded included. */
  get size(): number {
    return this.#heap.size;
  }

  schedule(entry: PollEntry): void {
    if (this.#closed) return;
    this.#heap.push(entry);
    // While waking, #wake re-arms once at its end instead of once per rescheduled poll.
    if (!this.#waking && entry.dueAt < this.#armedFor) this.#arm();
  }

  close(): void {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }

  #arm(): void {
    this.#timer?.clear();
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    let top = this.#heap.peek();
    while (top?.cancelled) {
      this.#heap.pop();
      top = this.#heap.peek();
    }
    if (top === undefined || this.#closed) return;
    this.#armedFor = top.dueAt;
    this.#timer = this.#clock.setTimer(() => this.#wake(), Math.max(0, top.dueAt - steadyMs(this.#clock)));
  }

  #wake(): void {
    this.wakeUps++;
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const now = steadyMs(this.#clock);
    this.#waking = true;
    let failure: { error: unknown } | undefined;
    try {
      for (let top = this.#heap.peek(); top !== undefined && top.dueAt <= now; top = this.#heap.peek()) {
        this.#heap.pop();
        if (top.cancelled) continue;
        // One poll that throws must not keep the others due now from firing, nor the timer from
        // being armed again: every poll of every task would stop.
        try {
          top.fire();
        } catch (error) {
          failure ??= { error };
        }
      }
    } finally {
      this.#waking = false;
      this.#arm();
    }
    // Then it is thrown, as the timer's own error: a bug of the caller's, not to be swallowed.
    if (failure) throw failure.error;
  }
}
