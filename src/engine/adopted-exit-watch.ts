import { pollKernel } from '../runtime/kernel-poll.ts';
import { isSameProcessAlive, type RecordedProcess } from '../runtime/process-identity.ts';

/**
 * Notices when the wrapper of a job adopted from an earlier server (or orphaned by a spawner that
 * died) exits. No exit event reaches the engine for such a job; one shared real-time poll
 * (kernel-poll.ts) checks every adopted job's recorded identity (a /proc read each), never one
 * timer per job.
 */
export class AdoptedExitWatch {
  readonly #intervalMs: number;
  readonly #watched = new Map<RecordedProcess, () => void>();
  #stopPolling: (() => void) | undefined;
  #closed = false;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /**
   * Resolves when the identified process is gone. After `close`, never: the engine closing lets go
   * of its jobs (a later server adopts them), and a wrapper orphaned by the spawner's own end at
   * that close must not start the poll again, keeping the closed engine polling and in memory.
   */
  exited(identity: RecordedProcess): Promise<void> {
    if (this.#closed) return new Promise(() => {});
    if (!isSameProcessAlive(identity)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#watched.set(identity, resolve);
      this.#stopPolling ??= pollKernel(() => this.#check(), this.#intervalMs, false);
    });
  }

  /** Whether the shared poll runs: while some watched process lives. */
  get polling(): boolean {
    return this.#stopPolling !== undefined;
  }

  /** For good: nothing is watched after. */
  close(): void {
    this.#closed = true;
    this.#stopPoll();
    this.#watched.clear();
  }

  #stopPoll(): void {
    this.#stopPolling?.();
    this.#stopPolling = undefined;
  }

  #check(): void {
    for (const [identity, resolve] of this.#watched) {
      if (isSameProcessAlive(identity)) continue;
      this.#watched.delete(identity);
      resolve();
    }
    if (this.#watched.size === 0) this.#stopPoll();
  }
}
