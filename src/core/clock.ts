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
  /**
   * Milliseconds on a time that moves steadily forward, whatever is done to the wall clock (an
   * NTP step, a resumed VM): for how long something has been going on. Only the difference between
   * two readings means anything. Optional, so that a clock written before it (the task library's
   * callers inject theirs) still is one: `steadyMs` reads `now()` where it is absent.
   */
  monotonicMs?(): number;
  /** Calls `fn` once, `ms` from now. The timer must not keep the process alive on its own. */
  setTimer(fn: () => void, ms: number): ClockTimer;
}

/** The largest delay `setTimeout` takes; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
  setTimer(fn, ms) {
    // setTimeout clamps anything over MAX_TIMER_MS to 1 ms: a 30-day wait would fire at once.
    // Longer waits sleep in steps and measure what is left against the wall clock each time.
    const due = Date.now() + Math.max(0, ms);
    let timer: NodeJS.Timeout;
    const arm = () => {
      const left = due - Date.now();
      if (left > MAX_TIMER_MS) {
        timer = setTimeout(arm, MAX_TIMER_MS);
      } else {
        timer = setTimeout(fn, Math.max(0, left));
      }
      timer.unref();
    };
    arm();
    return { clear: () => clearTimeout(timer) };
  },
};

/** `clock.monotonicMs()`, or its `now()` in ms for a clock without it. */
export function steadyMs(clock: Clock): number {
  return clock.monotonicMs ? clock.monotonicMs() : clock.now().getTime();
}

/** A deadline on a `Clock`: its signal aborts once `ms` have passed there; `clear` once it is not needed. */
export interface ClockDeadline {
  /** Aborted at the deadline, with a `TimeoutError` as `AbortSignal.timeout` gives. */
  readonly signal: AbortSignal;
  clear(): void;
}

/**
 * `AbortSignal.timeout` on `clock`: a grace period or a give-up time that a test's manual clock
 * moves, like every other timer of the server. Clear it once what it bounds is done, so that the
 * timer does not outlive it.
 */
export function clockDeadline(clock: Clock, ms: number): ClockDeadline {
  const controller = new AbortController();
  const timer = clock.setTimer(
    () => controller.abort(new DOMException(`The operation timed out after ${ms} ms`, 'TimeoutError')),
    ms,
  );
  return { signal: controller.signal, clear: () => timer.clear() };
}

/**
 * Resolves `ms` from now on `clock`, or rejects with `signal`'s reason once it aborts: a pause
 * (a reconnection's backoff) that a test's manual clock moves (and that, on one nobody moves,
 * never ends). Unlike a bare `setTimer`, the pause keeps the process alive: a program whose only
 * work left is to wait it out (a CLI follower between two reconnections) must not exit in the
 * middle of it.
 */
export function pauseOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // Not a schedule, only a reference that holds the process open while the clock's timer (which
  // does not) runs; it never fires.
  const hold = setInterval(() => undefined, 2 ** 30);
  let timer: ClockTimer | undefined;
  const settle = (): void => {
    clearInterval(hold);
    timer?.clear();
    signal?.removeEventListener('abort', onAbort);
  };
  const onAbort = (): void => {
    settle();
    reject(signal?.reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    timer = clock.setTimer(() => {
      settle();
      resolve();
    }, ms);
  } catch (error) {
    settle();
    throw error;
  }
  return promise;
}

/**
 * Calls `fn` once the wall clock (`clock.now()`) reaches `atMs`, at once when it has: an expiry (a
 * token's, a certificate's). The timer counts steady time and the wall clock may be stepped
 * meanwhile (NTP), so when it rings the time is read again, and the wait armed again if `atMs` has
 * not come yet. Clearing the timer returned ends the wait, whichever of its timers is armed.
 */
export function atWallTime(clock: Clock, atMs: number, fn: () => void): ClockTimer {
  let timer: ClockTimer | undefined;
  let cleared = false;
  const check = (): void => {
    if (cleared) return;
    const left = atMs - clock.now().getTime();
    if (left > 0) {
      timer = clock.setTimer(check, left);
      return;
    }
    timer = undefined;
    fn();
  };
  check();
  return {
    clear: () => {
      cleared = true;
      timer?.clear();
    },
  };
}
