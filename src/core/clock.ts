/** A timer that a `Clock` set; `clear` is idempotent. */
export interface ClockTimer {
  clear(): void;
}

/**
 * Time as the scheduler sees it: what time it is and a way to be called back later. The system
 * clock in production; tests inject a manual one and move time on, so no test sleeps.
 */
export interface Clock {
  now(): Date;
  /** Calls `fn` once, `ms` from now. The timer must not keep the process alive on its own. */
  setTimer(fn: () => void, ms: number): ClockTimer;
}

/** The largest delay `setTimeout` takes; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    timer.unref();
    return { clear: () => clearTimeout(timer) };
  },
};
