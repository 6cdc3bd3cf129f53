import { CompiledQuery, type Kysely, type QueryResult, type Transaction } from 'kysely';

/** A unit of writes that must be all or nothing, as one transaction of its own would make it. */
export type Work<DB, T> = (trx: Transaction<DB>) => Promise<T>;

interface Pending<DB> {
  readonly work: Work<DB, unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

// Compiled once: each unit of a batch pays for two of them, and a raw template is rebuilt and
// compiled on every execution.
const SAVEPOINT = CompiledQuery.raw('savepoint unit');
const ROLLBACK_TO = CompiledQuery.raw('rollback to unit');
const RELEASE = CompiledQuery.raw('release unit');

/**
 * Runs one statement at once on the connection a transaction holds, and returns its rows (see
 * `NodeSqliteDatabase.runNow`). node:sqlite is synchronous, and each statement Kysely runs costs
 * the event loop several promise hops and its turn on the connection (~1.6 us in a hot loop here,
 * more than SQLite takes for a savepoint): a batch with one runs its savepoints and its
 * one-statement units (`execute`) through it, only ever inside a transaction (the batch's, or a
 * unit's own when it runs alone), where nothing else can take the connection.
 */
export type RunNow = (sql: string, parameters: readonly unknown[]) => unknown[];

/** The outcome of one unit inside a batch. */
type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly err: unknown };

/**
 * Group commit. A commit costs far more than the writes of one job (the WAL append of every page
 * they touched), and jobs come in bursts: submissions of many clients at once, the starts of a
 * claimed batch in one turn of the event loop, the ends the spawner reports together. Units of
 * work given in one turn run in that order in one transaction at the end of the turn, each in a
 * savepoint of its own: one that throws is rolled back alone and its caller gets its error,
 * while the others are committed. If the batch itself cannot go on (SQLite ended the whole
 * transaction, as it does on a full disk) or its commit fails, nothing of it is kept and each
 * unit runs again in a transaction of its own, so that each caller sees exactly the outcome it
 * would have had alone.
 */
export class WriteBatch<DB> {
  readonly #db: Kysely<DB>;
  readonly #runNow: RunNow | undefined;
  #pending: Pending<DB>[] = [];
  /** The batch being written, if any. */
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Kysely<DB>, runNow?: RunNow) {
    this.#db = db;
    this.#runNow = runNow;
  }

  /**
   * Runs `work` in the next batch; resolves with its result once the batch is committed. `work`
   * must await every query it starts before it settles: the savepoint that follows it (run at once
   * with a `RunNow`) would otherwise come before a query still waiting for the connection.
   */
  run<T>(work: Work<DB, T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#startFlush());
    });
  }

  /**
   * One statement as a unit of work; run at once on the connection when the batch has a `RunNow`,
   * and then its result has `rows` only (use `returning` for what changed).
   */
  execute<R>(query: CompiledQuery<R>): Promise<QueryResult<R>> {
    const runNow = this.#runNow;
    if (runNow === undefined) return this.run((trx) => trx.executeQuery(query));
    // Called only as a unit, so inside a transaction: the batch's, or its own (`#alone`).
    return this.run(async () => ({ rows: runNow(query.sql, query.parameters) as R[] }));
  }

  /** Writes what is pending now and resolves once every unit given so far has its outcome. */
  async settle(): Promise<void> {
    this.#startFlush();
    await this.#flushing;
  }

  #startFlush(): void {
    if (this.#pending.length === 0) return;
    this.#flushing = this.#flushing.then(() => this.#flush());
  }

  async #flush(): Promise<void> {
    const units = this.#pending;
    this.#pending = [];
    if (units.length === 0) return;
    if (units.length === 1) return this.#alone(units[0]!);
    let outcomes: Outcome[];
    try {
      outcomes = await this.#db.transaction().execute(async (trx) => {
        const out: Outcome[] = [];
        for (const unit of units) {
          const saved = this.#control(trx, SAVEPOINT);
          if (saved) await saved;
          try {
            out.push({ ok: true, value: await unit.work(trx) });
          } catch (err) {
            // Throws (and so ends the batch) when SQLite has already ended the transaction.
            const undone = this.#control(trx, ROLLBACK_TO);
            if (undone) await undone;
            out.push({ ok: false, err });
          }
          const released = this.#control(trx, RELEASE);
          if (released) await released;
        }
        return out;
      });
    } catch {
      for (const unit of units) await this.#alone(unit);
      return;
    }
    for (const [i, unit] of units.entries()) {
      const outcome = outcomes[i]!;
      if (outcome.ok) unit.resolve(outcome.value);
      else unit.reject(outcome.err);
    }
  }

  /**
   * A savepoint's statement, inside the batch's transaction: run at once with a `RunNow` (then
   * nothing to await), else through Kysely (its promise).
   */
  #control(trx: Transaction<DB>, query: CompiledQuery): Promise<unknown> | undefined {
    if (this.#runNow === undefined) return trx.executeQuery(query);
    this.#runNow(query.sql, query.parameters);
    return undefined;
  }

  /** One unit in a transaction of its own. */
  async #alone(unit: Pending<DB>): Promise<void> {
    await this.#db.transaction().execute(unit.work).then(unit.resolve, unit.reject);
  }
}
