import type { Clock } from '../core/clock.ts';

export interface FailedAuthLimits {
  /** Failed authentications one source may make in a window; the next attempts wait. Default 20. */
  readonly maxFailures?: number;
  /** The window, in ms. Default one minute. */
  readonly windowMs?: number;
  /** Sources remembered at most (the oldest are forgotten first), so memory stays bounded. Default 10,000. */
  readonly maxSources?: number;
}

export const FAILED_AUTH_DEFAULTS = {
  maxFailures: 20,
  windowMs: 60_000,
  maxSources: 10_000,
} as const satisfies Required<FailedAuthLimits>;

interface Window {
  start: number;
  failures: number;
}

/**
 * Counts failed authentications per source address in fixed windows read from the clock (no
 * timer). Once a source has failed `maxFailures` times in its window, its failing attempts are
 * answered 429 until the window ends (the Authenticator asks). Valid credentials still pass: all
 * local users and jobs share the loopback address, and a lockout of a whole address would let any
 * of them shut the others out; a guesser learns nothing useful from a right guess of a 256-bit
 * token, which it will not make.
 */
export class FailedAuthLimiter {
  readonly #clock: Clock;
  readonly #limits: Required<FailedAuthLimits>;
  readonly #windows = new Map<string, Window>();

  constructor(clock: Clock, limits: FailedAuthLimits = {}) {
    this.#clock = clock;
    this.#limits = { ...FAILED_AUTH_DEFAULTS, ...limits };
  }

  /** Whole seconds `source` must wait before trying again; 0 when it may try now. */
  retryAfter(source: string): number {
    const window = this.#current(source, this.#clock.now().getTime());
    if (!window || window.failures < this.#limits.maxFailures) return 0;
    const left = window.start + this.#limits.windowMs - this.#clock.now().getTime();
    return Math.max(1, Math.ceil(left / 1000));
  }

  /** Counts one failed authentication of `source`. */
  fail(source: string): void {
    const now = this.#clock.now().getTime();
    const window = this.#current(source, now);
    if (window) {
      window.failures++;
      return;
    }
    this.#windows.set(source, { start: now, failures: 1 });
    if (this.#windows.size > this.#limits.maxSources) this.#forget(now);
  }

  /** Sources remembered now. */
  get size(): number {
    return this.#windows.size;
  }

  #current(source: string, now: number): Window | undefined {
    const window = this.#windows.get(source);
    if (window && now - window.start >= this.#limits.windowMs) {
      this.#windows.delete(source);
      return undefined;
    }
    return window;
  }

  /** Drops ended windows; if that is not enough, the oldest ones (Map order is insertion order). */
  #forget(now: number): void {
    for (const [source, window] of this.#windows) {
      if (now - window.start >= this.#limits.windowMs) this.#windows.delete(source);
    }
    for (const source of this.#windows.keys()) {
      if (this.#windows.size <= this.#limits.maxSources) break;
      this.#windows.delete(source);
    }
  }
}
