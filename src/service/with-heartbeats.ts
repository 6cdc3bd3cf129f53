import type { Clock, ClockTimer } from '../core/clock.ts';

/** What `withHeartbeats` yields while its source has nothing to give. */
export interface HeartbeatEvent {
  readonly type: 'heartbeat';
}

const HEARTBEAT: HeartbeatEvent = { type: 'heartbeat' };

/**
 * `source`'s values, and heartbeats while it yields nothing: a follow of a quiet job sends
 * nothing for hours, and a connection that no byte crosses is one a proxy or a NAT may drop
 * without a word, leaving the client waiting for the kernel (hours) to tell. A client that sees
 * neither output nor heartbeat for a few periods knows the link is gone, and reconnects from its
 * cursor.
 *
 * One timer per `ms` (on `clock`), not one per value: a tick that finds a value yielded since the
 * last one, or the consumer still holding one (a slow client's write), only re-arms, so a busy
 * stream arms no timer per batch; a heartbeat comes `ms` to `2 × ms` after the last value, then
 * every `ms` while the source stays quiet.
 *
 * Closing this generator closes `source`: at once when it is waiting at a `yield`; when its
 * current read settles otherwise (for an output follow, at the latest when the request's signal
 * ends it), not waited for here, so that a consumer that stops after a heartbeat is not held. A
 * generator closed before its first `next()` runs nothing, `finally` included: its caller closes
 * `source` itself then.
 */
export async function* withHeartbeats<T>(
  source: AsyncGenerator<T>,
  clock: Clock,
  ms: number,
): AsyncGenerator<T | HeartbeatEvent> {
  let reading: Promise<IteratorResult<T>> | undefined;
  let yielded = false;
  /** Ends the wait for `reading` with a heartbeat; set only while waiting. */
  let wake: ((beat: HeartbeatEvent) => void) | undefined;
  let timer: ClockTimer | undefined;
  const tick = (): void => {
    timer = undefined;
    if (!yielded && wake !== undefined) {
      // A whole period without a value while waiting for one: the heartbeat (the timer is armed
      // again once it was yielded).
      const beat = wake;
      wake = undefined;
      beat(HEARTBEAT);
      return;
    }
    // A value went out this period, or the consumer holds one (a slow client's write): that is
    // no silence of the source.
    yielded = false;
    timer = clock.setTimer(tick, ms);
  };
  timer = clock.setTimer(tick, ms);
  try {
    for (;;) {
      if (reading === undefined) {
        reading = source.next();
        // A read that fails after this generator was closed must not be an unhandled rejection;
        // while it runs, the wait below still sees its failure.
        reading.catch(() => {});
      }
      // Not `Promise.race` with a beat promise kept across reads: each race leaves a reaction on
      // a promise that stays pending, holding that race's result (a batch of output) until the
      // beat comes, so a busy follow would keep every byte it sent.
      const pending = reading;
      const got = await new Promise<IteratorResult<T> | HeartbeatEvent>((resolve, reject) => {
        wake = resolve;
        pending.then(resolve, reject);
      });
      wake = undefined;
      if (!('done' in got)) {
        yield HEARTBEAT;
        timer = clock.setTimer(tick, ms);
        continue;
      }
      reading = undefined;
      if (got.done) return;
      yielded = true;
      yield got.value;
    }
  } finally {
    wake = undefined;
    timer?.clear();
    if (reading === undefined) await source.return(undefined);
    else void reading.then(() => source.return(undefined)).catch(() => {});
  }
}
