import type { OutputEvent, OutputRead } from './output-types.ts';

/** Reads shared between a job's followers, kept per job (a catching-up follower must not pin its pages). */
const SHARED_READS = 8;

/** The events of every read a `SharedReads` handed out: the batches other followers may get too. */
const sharedBatches = new WeakSet<readonly OutputEvent[]>();

/**
 * Whether `events` is a shared read's, which other followers of the job may get as the same
 * array: what a writer makes of such a batch is worth keeping for them (output-writers.ts). A
 * follower's own read (a finished job's output read to its end) is not, and what was made of it
 * would only be kept in memory, for no one, until the collector found it dead.
 */
export function isSharedBatch(events: readonly OutputEvent[]): boolean {
  return sharedBatches.has(events);
}

/**
 * The reads of one followed job started since its last growth, by view, cursor and limit: a
 * thousand followers woken by the same write cause one read, and get the same events (whose
 * buffers they must not modify). Cleared at each growth: reads started before it may have missed
 * it, so later readers start their own.
 */
export class SharedReads {
  readonly #reads = new Map<string, Promise<OutputRead>>();

  /** The read of this key started since the last growth, or a new one from `start`. */
  get(key: string, start: () => Promise<OutputRead>): Promise<OutputRead> {
    let read = this.#reads.get(key);
    if (!read) {
      read = start().then((done) => {
        sharedBatches.add(done.events);
        return done;
      });
      if (this.#reads.size >= SHARED_READS) this.#reads.delete(this.#reads.keys().next().value!);
      this.#reads.set(key, read);
      // A failed read is not shared: the next reader tries again.
      read.catch(() => {
        if (this.#reads.get(key) === read) this.#reads.delete(key);
      });
    }
    return read;
  }

  clear(): void {
    this.#reads.clear();
  }
}
