import { ValidationError } from '../core/errors.ts';

/**
 * Queues come and go (docs/queues.md, "How many queues"): a submission naming a queue makes its
 * row, and the deletion of a queue's last job forgets it again, in the same transaction, unless
 * the queue has settings. So neither the queues table nor what is kept per queue (the metrics'
 * series) grows with every name a client ever used, only with the queues that exist.
 */

/**
 * A queue row holding nothing but its name: no setting differs from the defaults. Such a row says
 * only "a job named this queue"; once no job does, it goes. `default` always stays (the listing
 * always shows it). SQL over the `queues` table's columns, the same in both stores.
 */
export const UNSET_QUEUE = `name <> 'default' and concurrency is null and max_waiting is null and paused = 0
  and default_limits is null and max_limits is null and isolation is null`;

/** Most queue rows a store keeps unless told otherwise: `serve --max-queues`'s default. */
export const DEFAULT_MAX_QUEUES = 1000;

/** What `JobStore.admitJob` is told besides the job. */
export interface AdmitOptions {
  /**
   * Most queues the store may hold when this admission would make a new one (its queue has no row
   * yet): at that many, the job is refused with a `ValidationError` on `queue` (`queueLimitError`).
   * A queue made by `putQueue` is not limited. Default: null, no limit.
   */
  readonly maxQueues?: number | null;
}

/** The refusal of a job whose new queue would pass the server's limit of queues. */
export function queueLimitError(queue: string, maxQueues: number): ValidationError {
  return new ValidationError(
    'queue',
    `Expected \`queue\` to name one of the server's queues: ${JSON.stringify(queue)} would be a new one, ` +
      `and the server already has its maximum of ${maxQueues} queues. Use an existing queue (GET /v1/queues), ` +
      `or have an admin create this one (PUT /v1/queues/${queue}) or raise the limit ` +
      '(jobworker serve --max-queues N, JOBWORKER_MAX_QUEUES)',
  );
}

/** Told the names of the queues a store forgot, after the commit that forgot them. */
export type QueuesForgottenListener = (names: readonly string[]) => void;

/** The listeners of one store (`JobStore.onQueuesForgotten`). */
export class ForgottenQueueListeners {
  readonly #listeners = new Set<QueuesForgottenListener>();

  add(listener: QueuesForgottenListener): () => void {
    // Wrapped: the same function added twice is two listeners, each removed by its own call.
    const entry: QueuesForgottenListener = (names) => listener(names);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Tells every listener; one that throws does not keep the others from hearing it. */
  tell(names: readonly string[]): void {
    if (names.length === 0) return;
    for (const listener of this.#listeners) {
      try {
        listener(names);
      } catch {
        // A listener's failure is its own: the queues are forgotten either way.
      }
    }
  }
}
