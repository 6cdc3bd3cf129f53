import { rm } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Clock, ClockTimer } from '../core/clock.ts';
import type { FinishedBound, JobStore } from '../store/job-store.ts';

/** How long finished jobs are kept; null lifts a limit. */
export interface RetentionSettings {
  /** Most finished jobs kept (the newest by `finishedAt`); 0 keeps none, null any number. */
  readonly keepJobs: number | null;
  /** Finished jobs are deleted this long after they finished; 0 at the next pass, null never. */
  readonly keepForMs: number | null;
  /** Time between two passes. */
  readonly intervalMs: number;
  /** Jobs deleted per transaction. */
  readonly batch: number;
}

export interface HistoryRetentionOptions extends RetentionSettings {
  readonly store: JobStore;
  readonly clock: Clock;
  /** The directory of a job: removed after its row. */
  readonly jobDir: (id: string) => string;
  /**
   * This node: of the directories to remove, it removes those on its own disk (a store shared by
   * a cluster records each with its job's node; every node removes its own at its passes).
   */
  readonly node?: string;
  /**
   * Ends a run still alive in a deleted job's directory (`Launcher.endDeletedRun`), before the
   * directory that names it goes. A directory whose run could not be ended is kept, on record.
   */
  readonly endDeletedRun?: (id: string) => Promise<unknown>;
  /** Called after each pass with how many jobs it deleted. */
  readonly onPass: (deleted: number) => void;
  readonly onError: (err: Error) => void;
}

/** Where a one-off prune cuts: finished before `finishedBefore`, and only `owner`'s when given. */
export interface PruneRequest {
  readonly finishedBefore: Date;
  readonly owner?: string;
}

/**
 * Deletes finished jobs beyond the retention limits, with their directories (docs/operations.md,
 * "Retention"). A pass runs on the engine's clock every `intervalMs`, first right after start;
 * each batch is one indexed delete of at most `batch` rows, and the event loop gets a turn between
 * batches. Rows go first, in a transaction that also records the directories to remove; the
 * directories go after. A crash in between leaves only that record, which the next pass finishes.
 */
export class HistoryRetention {
  readonly #options: HistoryRetentionOptions;
  #timer: ClockTimer | null = null;
  #pass: Promise<number> | null = null;
  #closed = false;

  constructor(options: HistoryRetentionOptions) {
    this.#options = options;
  }

  /** Schedules the first pass (at once) and every later one. */
  start(): void {
    this.#schedule(0);
  }

  /** Runs a pass now (or joins the one running); resolves with how many jobs it deleted. */
  pass(): Promise<number> {
    this.#pass ??= this.#runPass().finally(() => {
      this.#pass = null;
    });
    return this.#pass;
  }

  /** Deletes the finished jobs a caller asked to prune; resolves with how many. */
  async prune(request: PruneRequest): Promise<number> {
    const before = { finishedAt: request.finishedBefore, id: '' };
    return this.#deleteBefore(before, request.owner);
  }

  /**
   * Removes the directories of jobs just deleted that are on this node's disk (their rows are gone
   * already), then forgets them. On a shared store, jobs of other nodes wait for those nodes.
   */
  async removeDeletedDirs(): Promise<void> {
    await this.#removeLeftDirs();
  }

  /** Removes these directories (their rows are gone already), then forgets them. */
  async #removeDirs(ids: readonly string[]): Promise<void> {
    const removed: string[] = [];
    for (const id of ids) {
      try {
        await this.#options.endDeletedRun?.(id);
        await rm(this.#options.jobDir(id), { recursive: true, force: true, maxRetries: 3 });
        removed.push(id);
      } catch (err) {
        // Left on record: the next pass tries again.
        this.#options.onError(err as Error);
      }
    }
    await this.#options.store.forgetDirsRemoved(removed);
  }

  /** No pass starts any more; resolves once the one running (if any) has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = null;
    await this.#pass?.catch(() => undefined);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimer(() => {
      this.#timer = null;
      this.pass().then(
        (deleted) => this.#options.onPass(deleted),
        (err: Error) => this.#options.onError(err),
      );
    }, ms);
  }

  async #runPass(): Promise<number> {
    try {
      await this.#removeLeftDirs();
      const { keepJobs, keepForMs } = this.#options;
      const now = this.#options.clock.now().getTime();
      const bound = await this.#options.store.retentionBound({
        finishedBefore: keepForMs === null ? null : new Date(now - keepForMs),
        keepNewest: keepJobs,
      });
      return bound === null ? 0 : await this.#deleteBefore(bound);
    } finally {
      // However the pass went, the next one comes.
      this.#timer?.clear();
      this.#schedule(this.#options.intervalMs);
    }
  }

  /** Directories whose rows went in an earlier pass that did not see them removed (a crash). */
  async #removeLeftDirs(): Promise<void> {
    for (;;) {
      const ids = await this.#options.store.listDirsToRemove(this.#options.batch, this.#options.node);
      await this.#removeDirs(ids);
      if (ids.length < this.#options.batch || this.#closed) return;
      await nextTurn();
    }
  }

  async #deleteBefore(before: FinishedBound, owner?: string): Promise<number> {
    const { store, batch } = this.#options;
    let deleted = 0;
    for (;;) {
      const ids = await store.deleteFinished({
        before,
        limit: batch,
        ...(owner === undefined ? {} : { owner }),
      });
      deleted += ids.length;
      if (ids.length > 0) await this.#removeLeftDirs();
      if (ids.length < batch || this.#closed) return deleted;
      // A long prune shares the event loop with requests: one batch per turn.
      await nextTurn();
    }
  }
}
