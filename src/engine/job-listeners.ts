/**
 * Listeners kept per job id. A follower listens to its own job only: an event of one job walks
 * that job's listeners, not every follower of every job, and a thousand followers add no
 * listener to a shared emitter (whose MaxListeners warning they would trip).
 */
export class JobListeners<T> {
  readonly #byJob = new Map<string, Set<(value: T) => void>>();

  /** Adds a listener of one job; returns what removes it (idempotent). */
  add(jobId: string, listener: (value: T) => void): () => void {
    let listeners = this.#byJob.get(jobId);
    if (!listeners) {
      listeners = new Set();
      this.#byJob.set(jobId, listeners);
    }
    listeners.add(listener);
    const own = listeners;
    return () => {
      if (!own.delete(listener) || own.size > 0) return;
      if (this.#byJob.get(jobId) === own) this.#byJob.delete(jobId);
    };
  }

  /** Calls each listener of the job (those added during the call wait for the next one). */
  notify(jobId: string, value: T): void {
    const listeners = this.#byJob.get(jobId);
    if (listeners) for (const listener of [...listeners]) listener(value);
  }

  /** Listeners of one job, or of all of them (leak checks). */
  count(jobId?: string): number {
    if (jobId !== undefined) return this.#byJob.get(jobId)?.size ?? 0;
    let count = 0;
    for (const listeners of this.#byJob.values()) count += listeners.size;
    return count;
  }
}
