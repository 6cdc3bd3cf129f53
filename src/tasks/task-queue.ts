/**
 * The tasks waiting for a slot, first come first served. `take` returns the first that `ready`
 * accepts: a blocking task waiting for a thread does not hold up a polling task behind it.
 * Entries that no longer wait (cancelled) are dropped as they are met.
 */
export class TaskQueue<T> {
  #items: T[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  /** The first waiting item `ready` accepts; items `gone` says no longer wait are dropped. */
  take(ready: (item: T) => boolean, gone: (item: T) => boolean): T | undefined {
    while (this.#head < this.#items.length && gone(this.#items[this.#head] as T)) this.#head++;
    this.#compact();
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i] as T;
      if (!ready(item)) continue;
      if (i === this.#head) {
        this.#head++;
        this.#compact();
      } else this.#items.splice(i, 1);
      return item;
    }
    return undefined;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}
