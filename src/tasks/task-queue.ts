/**
 * The tasks waiting for a slot, first come first served. `take` returns the first that `ready`
 * accepts: a blocking task waiting for a thread does not hold up a polling task behind it.
 * Entries that no longer wait (cancelled) are dropped as they are met at the head, and swept out
 * all at once when `forget` has been told of as many as half the queue: behind a head that waits
 * long (a blocking task with every thread busy), cancelled tasks would otherwise be held, with
 * whatever they refer to, until it went.
 */
export class TaskQueue<T> {
  readonly #gone: (item: T) => boolean;
  #items: T[] = [];
  #head = 0;
  /** `forget` calls since the last sweep: an upper bound of the entries held that are gone. */
  #forgotten = 0;

  /** `gone`: whether an entry no longer waits (its task was cancelled). */
  constructor(gone: (item: T) => boolean) {
    this.#gone = gone;
  }

  /** Entries held: those waiting, and gone ones not yet dropped. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The first waiting item `ready` accepts, taken out of the queue. */
  take(ready: (item: T) => boolean): T | undefined {
    this.#advance();
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i] as T;
      if (this.#gone(item) || !ready(item)) continue;
      if (i === this.#head) {
        this.#head++;
        this.#advance();
      } else this.#items.splice(i, 1);
      return item;
    }
    return undefined;
  }

  /** Drops the gone entries at the head. */
  #advance(): void {
    while (this.#head < this.#items.length && this.#gone(this.#items[this.#head] as T)) this.#head++;
    this.#compact();
  }

  /**
   * Told that an entry stopped waiting. The gone ones are swept out once the calls since the last
   * sweep are half the entries held (and at least 64): each sweep's cost is paid for by as many
   * calls as it looks at entries, twice over.
   */
  forget(): void {
    this.#forgotten++;
    if (this.#forgotten < 64 || this.#forgotten * 2 < this.size) return;
    this.#items = this.#items.slice(this.#head).filter((item) => !this.#gone(item));
    this.#head = 0;
    this.#forgotten = 0;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}
