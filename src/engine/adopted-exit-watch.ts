import { isSameProcessAlive, type RecordedProcess } from '../runtime/process-identity.ts';

/**
 * Notices when the wrapper of a job adopted from an earlier server (or orphaned by a spawner that
 * died) exits. No exit event reaches the engine for such a job; one shared timer checks every adopted job's
 * recorded identity (a /proc read each), never one timer per job.
 */
export class AdoptedExitWatch {
  readonly #intervalMs: number;
  readonly #watched = new Map<RecordedProcess, () => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Resolves when the identified process is gone. */
  exited(identity: RecordedProcess): Promise<void> {
    if (!isSameProcessAlive(identity)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#watched.set(identity, resolve);
      this.#timer ??= setInterval(() => this.#check(), this.#intervalMs);
      this.#timer.unref();
    });
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
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
