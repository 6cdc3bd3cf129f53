import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';

/** `dns.lookup` with `all: true`, as the gate calls it. */
export type LookupAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** How many lookups the server's webhooks may have in flight at once by default (libuv's pool has 4 threads). */
export const DEFAULT_LOOKUPS = 2;

/**
 * Lets at most `max` DNS lookups run at once; the rest wait their turn. `dns.lookup` is
 * getaddrinfo(3) on libuv's thread pool, 4 threads that the server's file work shares (a job's
 * directories, its output read for a client, the files it sends): webhook URLs name any host a
 * user likes, and a few whose DNS never answers (each try of each name server waits seconds)
 * would take every thread and hold up all of that. With the gate they hold up only webhooks.
 * A lookup whose request was given up (`signal`) before its turn never runs; one already running
 * keeps its place until getaddrinfo returns, since it keeps its thread that long too.
 */
export class LookupGate {
  readonly #max: number;
  readonly #lookup: LookupAll;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(max = DEFAULT_LOOKUPS, lookup: LookupAll = dnsLookup) {
    if (!Number.isInteger(max) || max < 1)
      throw new RangeError(`max must be a whole number >= 1 (got ${max})`);
    this.#max = max;
    this.#lookup = lookup;
  }

  /** Lookups running now. */
  get running(): number {
    return this.#running;
  }

  /** Lookups waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Looks `hostname` up (every address) when its turn comes; `callback` is called once, unless
   * `signal` aborts before the lookup began (then never: whoever asked has gone).
   */
  lookup(
    hostname: string,
    options: LookupAllOptions,
    callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
    signal?: AbortSignal,
  ): void {
    const run = (): void => {
      signal?.removeEventListener('abort', drop);
      this.#running++;
      let returned = false;
      const done = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]): void => {
        if (returned) return;
        returned = true;
        this.#running--;
        this.#waiting.shift()?.();
        callback(err, addresses);
      };
      try {
        this.#lookup(hostname, options, done);
      } catch (err) {
        // An invalid argument throws rather than calls back: the place is given back all the same.
        done(err as NodeJS.ErrnoException, []);
      }
    };
    const drop = (): void => {
      const at = this.#waiting.indexOf(run);
      if (at !== -1) this.#waiting.splice(at, 1);
    };
    if (signal?.aborted) return;
    if (this.#running < this.#max) {
      run();
      return;
    }
    signal?.addEventListener('abort', drop, { once: true });
    this.#waiting.push(run);
  }
}
