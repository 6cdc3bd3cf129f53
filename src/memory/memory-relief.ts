import type { Clock, ClockTimer } from '../core/clock.ts';
import { loadMallocTrim } from './malloc-trim.ts';

/** How long the server stays quiet (no follow or job ending) before it gives memory back. */
export const RELIEF_QUIET_MS = 2000;

/**
 * Gives memory back to the system once a burst of work is over. V8 keeps the pages a burst grew
 * its heap by (big follows, thousands of jobs) pooled or merely discarded after an ordinary
 * collection, so the server's RSS stayed at its peak for good; a collection of the "last resort"
 * flavour releases them. It pauses the server for tens of milliseconds, so it runs once per quiet
 * spell: `RELIEF_QUIET_MS` after the last `activity()`, never while `busy()` says a pause would be
 * felt (a follower waits for its next line), and not again until there is more activity.
 */
export class MemoryRelief {
  readonly #clock: Clock;
  readonly #collect: () => void;
  readonly #quietMs: number;
  readonly #busy: () => boolean;
  #timer: ClockTimer | undefined;
  #lastActivity = 0;
  #closed = false;

  constructor(clock: Clock, collect: () => void, options: { quietMs?: number; busy?: () => boolean } = {}) {
    this.#clock = clock;
    this.#collect = collect;
    this.#quietMs = options.quietMs ?? RELIEF_QUIET_MS;
    this.#busy = options.busy ?? (() => false);
  }

  /** Something that allocated a lot has ended: relief once the server has been quiet a while. */
  activity(): void {
    // Jobs still end while the server closes: a relief then would find its store closed.
    if (this.#closed) return;
    this.#lastActivity = this.#clock.now().getTime();
    // One timer per quiet spell, not one per call: thousands of jobs may end each second.
    this.#timer ??= this.#clock.setTimer(() => this.#due(), this.#quietMs);
  }

  /** For good: activity after it arms nothing. */
  close(): void {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }

  #due(): void {
    const quietFor = this.#clock.now().getTime() - this.#lastActivity;
    if (this.#busy()) {
      // Busy now: the relief waits for the next quiet spell (its end is an activity too).
      this.#timer = undefined;
      return;
    }
    if (quietFor < this.#quietMs) {
      this.#timer = this.#clock.setTimer(() => this.#due(), this.#quietMs - quietFor);
      return;
    }
    this.#timer = undefined;
    this.#collect();
  }
}

/**
 * What a relief does in this process, or undefined without V8's `gc()` (`--expose-gc`): first
 * `caches` gives back what the server keeps only to be quicker (the store's page cache), then a
 * collection of the "last resort" flavour, which also gives back the pages V8 keeps pooled and the
 * young generation a burst grew, then glibc's `malloc_trim(0)` (src/memory/native/malloc-trim.c),
 * which gives back the free memory inside malloc's heaps that freeing alone left resident below a
 * block still in use (10,000 finished jobs: ~24 MB). Without the addon the rest still runs, and
 * `log` hears why once; a failure of `caches` is logged and the rest runs all the same. When
 * `busy()` says so once the caches are released, the rest is skipped.
 */
export function releaseThisProcess(
  options: { log?: (message: string) => void; caches?: () => Promise<void>; busy?: () => boolean } = {},
): (() => Promise<void>) | undefined {
  const gc = (globalThis as { gc?: (options?: object) => unknown }).gc;
  if (typeof gc !== 'function') return undefined;
  const { log, caches, busy } = options;
  const malloc = loadMallocTrim();
  if ('reason' in malloc) log?.(`memory relief runs without malloc_trim: ${malloc.reason}`);
  const trim = 'trim' in malloc ? malloc.trim : undefined;
  return async () => {
    try {
      await caches?.();
    } catch (err) {
      log?.(`memory relief: the caches could not be released: ${(err as Error).message}`);
    }
    // The caches waited their turn on the store: a follow may have opened meanwhile, which the
    // collection's pause would reach. The next quiet spell will do.
    if (busy?.()) return;
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    // After the collection: the buffers it freed are malloc's, and only now free.
    trim?.();
  };
}
