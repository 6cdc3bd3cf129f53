import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';

/** `dns.lookup` with `all: true`, as the gate calls it. */
export type LookupAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

type Answer = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;

/**
 * How many lookups may run at once with a thread pool of `threads` (the server's configured
 * `UV_THREADPOOL_SIZE`, config.ts): half of it, at least one.
 */
export function lookupsFor(threads: number): number {
  return Math.max(1, Math.floor(threads / 2));
}

/** One lookup of a name (with its options), waiting for its turn or running, and who wants it. */
interface Pending {
  readonly key: string;
  readonly hostname: string;
  readonly options: LookupAllOptions;
  readonly askers: Set<Asker>;
  started: boolean;
}

interface Asker {
  readonly answer: Answer;
  readonly signal: AbortSignal | undefined;
  readonly leave: () => void;
}

/**
 * Lets at most `max` DNS lookups run at once, and one per name: the rest wait their turn, and
 * whoever asks for a name already asked for gets that lookup's answer. `dns.lookup` is
 * getaddrinfo(3) on libuv's thread pool, whose threads the server's file work shares (a job's
 * directories, its output read for a client, the files it sends): webhook URLs name any host a
 * user likes, and names whose DNS never answers (each try of each name server waits seconds)
 * would take every thread and hold up all of that. With the gate they hold up only webhooks, and
 * one such name, however many deliveries go to it, takes one place.
 * An asker that leaves (`signal`) is never answered; a lookup every asker left before its turn
 * never runs, and one already running keeps its place until getaddrinfo returns, since it keeps
 * its thread that long too.
 */
export class LookupGate {
  readonly #max: number;
  readonly #lookup: LookupAll;
  #running = 0;
  /** Lookups waiting for a place, in the order they were first asked for. */
  readonly #queue: Pending[] = [];
  /** Every lookup waiting or running, by name and options. */
  readonly #byKey = new Map<string, Pending>();

  constructor(max = lookupsFor(4), lookup: LookupAll = dnsLookup) {
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
    return this.#queue.length;
  }

  /**
   * Looks `hostname` up (every address) when its turn comes; `answer` is called once, unless
   * `signal` aborts before (then never: whoever asked has gone).
   */
  lookup(hostname: string, options: LookupAllOptions, answer: Answer, signal?: AbortSignal): void {
    if (signal?.aborted) return;
    const key = `${hostname}\n${JSON.stringify(options)}`;
    let pending = this.#byKey.get(key);
    if (pending === undefined) {
      pending = { key, hostname, options, askers: new Set(), started: false };
      this.#byKey.set(key, pending);
      this.#queue.push(pending);
    }
    const wanted = pending;
    const asker: Asker = {
      answer,
      signal,
      leave: () => {
        wanted.askers.delete(asker);
        if (wanted.started || wanted.askers.size > 0) return;
        this.#byKey.delete(wanted.key);
        this.#queue.splice(this.#queue.indexOf(wanted), 1);
      },
    };
    wanted.askers.add(asker);
    signal?.addEventListener('abort', asker.leave, { once: true });
    this.#next();
  }

  /** Starts waiting lookups while there are places. */
  #next(): void {
    while (this.#running < this.#max) {
      const pending = this.#queue.shift();
      if (pending === undefined) return;
      this.#start(pending);
    }
  }

  #start(pending: Pending): void {
    pending.started = true;
    this.#running++;
    let returned = false;
    const done: Answer = (err, addresses) => {
      if (returned) return;
      returned = true;
      this.#running--;
      this.#byKey.delete(pending.key);
      const askers = [...pending.askers];
      for (const asker of askers) asker.signal?.removeEventListener('abort', asker.leave);
      // Every asker is answered, whatever one of them throws (the first throw goes on after), and
      // the place goes to the next lookup whatever happened.
      let thrown: { error: unknown } | undefined;
      try {
        for (const asker of askers) {
          try {
            asker.answer(err, addresses);
          } catch (error) {
            thrown ??= { error };
          }
        }
      } finally {
        this.#next();
      }
      if (thrown) throw thrown.error;
    };
    try {
      this.#lookup(pending.hostname, pending.options, done);
    } catch (err) {
      // An invalid argument throws rather than calls back: the place is given back all the same.
      // A throw from an answer (the resolver called back at once) is not the lookup's.
      if (returned) throw err;
      done(err as NodeJS.ErrnoException, []);
    }
  }
}
