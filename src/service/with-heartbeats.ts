import type { Clock, ClockTimer } from '../core/clock.ts';

/** What `withHeartbeats` yields while its source has nothing to give. */
export interface HeartbeatEvent {
  readonly type: 'heartbeat';
}

const HEARTBEAT: HeartbeatEvent = { type: 'heartbeat' };

/**
 * `source`'s values, and a heartbeat after every `ms` (on `clock`) in which it yielded nothing: a
 * follow of a quiet job sends nothing for hours, and a connection that no byte crosses is one a
 * proxy or a NAT may drop without a word, leaving the client waiting for the kernel (hours) to
 * tell. A client that sees neither output nor heartbeat for a few periods knows the link is
 * gone, and reconnects from its cursor.
 *
 * Closing this generator closes `source`: at once when it is waiting at a `yield`; when its
 * current read settles otherwise (for an output follow, at the latest when the request's signal
 * ends it), not waited for here, so that a consumer that stops after a heartbeat is not held.
 */
export async function* withHeartbeats<T>(
  source: AsyncGenerator<T>,
  clock: Clock,
  ms: number,
): AsyncGenerator<T | HeartbeatEvent> {
  let reading: Promise<IteratorResult<T>> | undefined;
  try {
    for (;;) {
      if (reading === undefined) {
        reading = source.next();
        // A read that fails after this generator was closed must not be an unhandled rejection;
        // while it runs, the race below still sees its failure.
        reading.catch(() => {});
      }
      let timer: ClockTimer | undefined;
      const beat = new Promise<typeof HEARTBEAT>((resolve) => {
        timer = clock.setTimer(() => resolve(HEARTBEAT), ms);
      });
      const got = await Promise.race([reading, beat]).finally(() => timer?.clear());
      if (!('done' in got)) {
        yield HEARTBEAT;
        continue;
      }
      reading = undefined;
      if (got.done) return;
      yield got.value;
    }
  } finally {
    if (reading === undefined) await source.return(undefined);
    else void reading.then(() => source.return(undefined)).catch(() => {});
  }
}
