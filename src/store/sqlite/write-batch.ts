import type { CompiledQuery, Kysely, QueryResult } from 'kysely';

interface PendingWrite {
  readonly query: CompiledQuery<unknown>;
  readonly resolve: (result: QueryResult<unknown>) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Group commit for single-statement writes. Each statement stands alone (it checks its own
 * preconditions in its `where`), but a commit costs far more than an UPDATE of one row (the WAL
 * append of every page it touched), and starts and ends come in bursts: the starts of a claimed
 * batch arrive in one turn of the event loop, as do the ends the spawner reports together.
 * Statements given in one turn run in that order, in one transaction, at the end of the turn;
 * each caller gets its own result. When any of them fails, or the commit does, nothing of the
 * batch is kept and each statement runs again on its own, so that each caller sees exactly the
 * outcome (or the error) it would have had alone.
 */
export class WriteBatch<DB> {
  readonly #db: Kysely<DB>;
  #pending: PendingWrite[] = [];
  /** The batch being written, if any. */
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Kysely<DB>) {
    this.#db = db;
  }

  execute<R>(query: CompiledQuery<R>): Promise<QueryResult<R>> {
    return new Promise<QueryResult<R>>((resolve, reject) => {
      this.#pending.push({ query, resolve: resolve as PendingWrite['resolve'], reject });
      if (this.#pending.length === 1) setImmediate(() => this.#startFlush());
    });
  }

  /** Writes what is pending now and resolves once every write given so far has its outcome. */
  async settle(): Promise<void> {
    this.#startFlush();
    await this.#flushing;
  }

  #startFlush(): void {
    if (this.#pending.length === 0) return;
    const previous = this.#flushing;
    this.#flushing = previous.then(() => this.#flush());
  }

  async #flush(): Promise<void> {
    const writes = this.#pending;
    this.#pending = [];
    if (writes.length === 0) return;
    if (writes.length === 1) {
      const [write] = writes as [PendingWrite];
      await this.#db.executeQuery(write.query).then(write.resolve, write.reject);
      return;
    }
    let results: QueryResult<unknown>[];
    try {
      results = await this.#db.transaction().execute(async (trx) => {
        const out: QueryResult<unknown>[] = [];
        for (const write of writes) out.push(await trx.executeQuery(write.query));
        return out;
      });
    } catch {
      // Rolled back: one by one, each with its own outcome.
      for (const write of writes) await this.#db.executeQuery(write.query).then(write.resolve, write.reject);
      return;
    }
    for (const [i, write] of writes.entries()) write.resolve(results[i]!);
  }
}
