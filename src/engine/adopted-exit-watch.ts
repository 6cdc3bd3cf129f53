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

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Resolves when the identified process is gone. */
  exited(identity: RecordedProcess): Promise<void> {
    if (!isSameProcessAlive(identity)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#watched.set(identity, resolve);
      this.#stopPolling ??= pollKernel(() => this.#check(), this.#intervalMs, false);
    });
  }

  close(): void {
    this.#stopPolling?.();
    this.#stopPolling = undefined;
    this.#watched.clear();
  }

  #check(): void {
    for (const [identity, resolve] of this.#watched) {
      if (isSameProcessAlive(identity)) continue;
      this.#watched.delete(identity);
      resolve();
    }
    if (this.#watched.size === 0) this.close();
  }
}
