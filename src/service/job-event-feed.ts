import type { EventEmitter } from 'node:events';
import type { Clock } from '../core/clock.ts';
import type { Job } from '../core/job.ts';
import type { EngineEvents } from '../engine/engine-events.ts';

/** The job events a watcher is told about (docs/api.md, "Events"). */
export const JOB_EVENT_TYPES = [
  'job:queued',
  'job:started',
  'job:progress',
  'job:paused',
  'job:resumed',
  'job:finished',
] as const;

export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

/** One change of one job, as the engine recorded it. */
export interface JobEvent {
  /**
   * Where the event stands in this server's sequence: `<epoch>.<seq>`, the epoch naming the server
   * process (an id from before a restart is recognised as such), the sequence counting from 1.
   */
  readonly id: string;
  readonly type: JobEventType;
  /** The job as stored right after the change. */
  readonly job: Job;
}

/**
 * What a watch yields. It starts with exactly one `ready` (nothing was missed: the events after
 * `lastEventId` follow) or `reset` (events were missed, or the id is unknown: reload, then carry
 * on from `lastEventId`), then events as they happen and a `heartbeat` when nothing happened for a
 * while. A consumer too slow to keep up gets a `reset` and the watch ends.
 */
export type WatchMessage =
  | { readonly kind: 'ready'; readonly lastEventId: string }
  | { readonly kind: 'reset'; readonly lastEventId: string; readonly reason: string }
  | { readonly kind: 'event'; readonly event: JobEvent }
  | { readonly kind: 'heartbeat' };

export interface JobEventFeedOptions {
  readonly clock: Clock;
  /** Recent events kept for resuming watchers. */
  readonly capacity: number;
}

/**
 * The service's one source of job events: it listens to the engine, numbers each event, and keeps
 * the last `capacity` of them in a ring so that a watcher that reconnects with the id of the last
 * event it saw gets exactly the ones it missed (or a `reset` when they are gone). REST's SSE and
 * the RPC stream both read it, through `JobService.watchEvents`.
 *
 * The ring fills from the first watch on: an id of this server's epoch is only ever handed out by
 * a watch, so the events before the first one can never be asked for again. A server nobody
 * watches keeps none (1,000 events of whole jobs were ~2 MB of an idle server's heap).
 */
export class JobEventFeed {
  readonly #ring: JobEvent[] = [];
  readonly #listeners = new Set<(event: JobEvent) => void>();
  readonly #epoch: string;
  readonly #capacity: number;
  #seq = 0;
  /** Set by the first watch: from then on the ring keeps events for resuming watchers. */
  #kept = false;
  readonly #detach: () => void;

  constructor(source: Pick<EventEmitter<EngineEvents>, 'on' | 'off'>, options: JobEventFeedOptions) {
    this.#epoch = options.clock.now().getTime().toString(36);
    this.#capacity = options.capacity;
    // `job:progress` is not an engine event everywhere yet: listening to a name that is never
    // emitted costs nothing, and the feed passes it on once the engine emits it.
    const untyped = source as unknown as EventEmitter;
    const handlers = JOB_EVENT_TYPES.map((type) => {
      const handler = (job: Job): void => this.#publish(type, job);
      untyped.on(type, handler);
      return [type, handler] as const;
    });
    this.#detach = () => {
      for (const [type, handler] of handlers) untyped.off(type, handler);
    };
  }

  /** The id of the newest event, or `<epoch>.0` before the first. */
  get lastEventId(): string {
    return `${this.#epoch}.${this.#seq}`;
  }

  /** Calls `listener` with every later event; returns the function that stops it. */
  subscribe(listener: (event: JobEvent) => void): () => void {
    this.#kept = true;
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The kept events after `lastEventId`, oldest first, or why they cannot be given: a different
   * epoch (another server process), an id older than the ring, or one not yet handed out.
   */
  since(lastEventId: string): { events: readonly JobEvent[] } | { reset: string } {
    const dot = lastEventId.lastIndexOf('.');
    const epoch = lastEventId.slice(0, dot);
    const seq = Number(lastEventId.slice(dot + 1));
    if (dot <= 0 || !Number.isSafeInteger(seq) || seq < 0) {
      return { reset: `${JSON.stringify(lastEventId)} is not an event id of this server` };
    }
    if (epoch !== this.#epoch) return { reset: 'The server restarted since that event' };
    if (seq > this.#seq) return { reset: `Event ${lastEventId} has not happened yet` };
    const oldest = this.#seq - this.#ring.length; // the last id before the ring's first event
    if (seq < oldest) return { reset: `Event ${lastEventId} is older than the ${this.#capacity} kept` };
    return { events: this.#ring.slice(seq - oldest) };
  }

  /** Stops listening to the engine. */
  close(): void {
    this.#detach();
    this.#listeners.clear();
  }

  #publish(type: JobEventType, job: Job): void {
    this.#seq++;
    const event: JobEvent = { id: `${this.#epoch}.${this.#seq}`, type, job };
    if (this.#kept) {
      this.#ring.push(event);
      if (this.#ring.length > this.#capacity) this.#ring.shift();
    }
    for (const listener of this.#listeners) listener(event);
  }
}
