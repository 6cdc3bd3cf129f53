import type { Clock } from '../core/clock.ts';
import type { Job } from '../core/job.ts';
import type { JobEvent, JobEventFeed, WatchMessage } from './job-event-feed.ts';

export interface EventWatchOptions {
  readonly feed: JobEventFeed;
  /** Whether the watcher may see this job. */
  readonly visible: (job: Job) => boolean;
  /** Where to resume: the id of the last event the watcher saw; absent: from now. */
  readonly lastEventId?: string | undefined;
  readonly clock: Clock;
  /** A heartbeat after this long without a message, so proxies and clients see the stream alive. */
  readonly heartbeatMs: number;
  /** Messages waiting for a slow consumer; one more ends the watch with a `reset`. */
  readonly backlog: number;
  /** Ends the watch (the client left, or the server shuts down). */
  readonly signal: AbortSignal;
}

/**
 * One watcher's messages (see `WatchMessage`). It subscribes and reads the ring in the same
 * synchronous step, so no event falls between the replay and the live ones, nor comes twice.
 */
export async function* watchEvents(options: EventWatchOptions): AsyncGenerator<WatchMessage> {
  const { feed, visible, clock, signal } = options;
  const pending: WatchMessage[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const unsubscribe = feed.subscribe((event: JobEvent) => {
    if (overflowed || !visible(event.job)) return;
    if (pending.length >= options.backlog) overflowed = true;
    else pending.push({ kind: 'event', event });
    notify();
  });
  let timer = clock.setTimer(beat, options.heartbeatMs);
  function beat(): void {
    pending.push({ kind: 'heartbeat' });
    notify();
    timer = clock.setTimer(beat, options.heartbeatMs);
  }
  signal.addEventListener('abort', notify, { once: true });
  try {
    if (options.lastEventId === undefined) {
      yield { kind: 'ready', lastEventId: feed.lastEventId };
    } else {
      const missed = feed.since(options.lastEventId);
      if ('reset' in missed) {
        yield { kind: 'reset', lastEventId: feed.lastEventId, reason: missed.reset };
      } else {
        yield { kind: 'ready', lastEventId: options.lastEventId };
        // The ring as it was when subscribed: later events are in `pending`, not here.
        for (const event of missed.events) if (visible(event.job)) yield { kind: 'event', event };
      }
    }
    while (!signal.aborted) {
      const message = pending.shift();
      if (message !== undefined) {
        if (message.kind !== 'heartbeat') {
          // Any message shows the stream alive: the next heartbeat is due a full interval later.
          timer.clear();
          timer = clock.setTimer(beat, options.heartbeatMs);
        }
        yield message;
        continue;
      }
      if (overflowed) {
        yield {
          kind: 'reset',
          lastEventId: feed.lastEventId,
          reason: `More than ${options.backlog} events waited for this watcher; it fell behind`,
        };
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    unsubscribe();
    timer.clear();
    signal.removeEventListener('abort', notify);
  }
}
