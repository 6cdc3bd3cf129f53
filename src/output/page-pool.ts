/**
 * Reused buffers for catch-up reads. A fresh 1 MiB buffer per page is costly in the server:
 * `jobworker serve` runs with MALLOC_MMAP_THRESHOLD_=65536, so each is a new mmap, its page
 * faults and a munmap, and each counts as external memory that drives V8 to collect more often.
 * A page goes back with `give` once nothing reads it any more (its bytes went to the socket); a
 * page never given back is simply collected, so a consumer that does not know of the pool is safe.
 */
export class PagePool {
  readonly pageBytes: number;
  readonly #maxIdle: number;
  readonly #idle: Buffer[] = [];
  /** Pages handed out and not yet given back: weakly held, since a page may never come back. */
  readonly #out = new WeakSet<Buffer>();

  constructor(pageBytes: number, maxIdle: number) {
    if (!Number.isSafeInteger(pageBytes) || pageBytes <= 0) {
      throw new RangeError(`Expected \`pageBytes\` to be a positive integer, got ${pageBytes}`);
    }
    this.pageBytes = pageBytes;
    this.#maxIdle = maxIdle;
  }

  /** A page of `pageBytes`, not held by anyone else. */
  take(): Buffer {
    const page = this.#idle.pop() ?? Buffer.allocUnsafeSlow(this.pageBytes);
    this.#out.add(page);
    return page;
  }

  /**
   * Gives a page back for reuse. Only a page handed out and not given back since counts: a second
   * `give` of the same page (or of a foreign buffer) is ignored, so that no page is ever handed
   * out to two holders at once. Returns whether the page was taken back.
   */
  give(page: Buffer): boolean {
    if (!this.#out.delete(page)) return false;
    if (this.#idle.length < this.#maxIdle) this.#idle.push(page);
    return true;
  }

  /** Pages waiting to be reused. */
  get idle(): number {
    return this.#idle.length;
  }
}
