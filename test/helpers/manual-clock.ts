import type { Clock, ClockTimer } from '../../src/core/clock.ts';

/** A clock that moves only when told: timers due by then fire in time order. No test sleeps. */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; fn: () => void; cleared: boolean }[] = [];
  /** Resolvers of `timerSet` waits, told at the next `setTimer`. */
  #waiting: (() => void)[] = [];

  constructor(start: Date = new Date()) {
    this.#now = start.getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  /** The same time as `now()`: on this clock nothing but `advance` moves it. */
  monotonicMs(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): ClockTimer {
    const timer = { at: this.#now + Math.max(0, ms), fn, cleared: false };
    this.#timers.push(timer);
    // A timer already due fires on the next turn, as a real one would.
    if (ms <= 0) setImmediate(() => this.advance(0));
    for (const told of this.#waiting.splice(0)) told();
    return { clear: () => (timer.cleared = true) };
  }

  /**
   * Resolves once a timer is pending: at once if one is, else at the next `setTimer`. For a test
   * that must not move time on before the code under test has armed its wait.
   */
  timerSet(): Promise<void> {
    if (this.pending > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Timers set and neither fired nor cleared. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cleared).length;
  }

  /** Moves time on by `ms` and fires every timer due by then. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#timers.filter((t) => t.at <= this.#now && !t.cleared).sort((a, b) => a.at - b.at);
    this.#timers = this.#timers.filter((t) => t.at > this.#now && !t.cleared);
    for (const t of due) t.fn();
  }
}
