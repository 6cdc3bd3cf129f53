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
 * last one only re-arms, so a busy stream pays nothing per batch, and a heartbeat comes `ms` to
 * `2 × ms` after the last value, then every `ms` while the source stays quiet.
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
  let fire: () => void = () => undefined;
  /** The beat fired and was not yielded yet. */
  let fired = false;
  const armBeat = (): Promise<HeartbeatEvent> =>
    new Promise((resolve) => {
      fire = () => resolve(HEARTBEAT);
    });
  let beat = armBeat();
  let timer: ClockTimer | undefined;
  const tick = (): void => {
    timer = undefined;
    if (!yielded) {
      fired = true;
      fire();
      return;
    }
    yielded = false;
    timer = clock.setTimer(tick, ms);
  };
  timer = clock.setTimer(tick, ms);
  try {
    for (;;) {
      if (reading === undefined) {
        reading = source.next();
        // A read that fails after this generator was closed must not be an unhandled rejection;
        // while it runs, the race below still sees its failure.
        reading.catch(() => {});
      }
      const got = await Promise.race([reading, beat]);
      if (!('done' in got)) {
        fired = false;
        beat = armBeat();
        yield HEARTBEAT;
        timer = clock.setTimer(tick, ms);
        continue;
      }
      reading = undefined;
      if (got.done) return;
      yielded = true;
      yield got.value;
      if (fired) {
        // It fired while the consumer held the value (a slow client's write): that was no
        // silence of the source, and a heartbeat now would only follow the value at once.
        fired = false;
        beat = armBeat();
        timer = clock.setTimer(tick, ms);
      }
    }
  } finally {
    timer?.clear();
    if (reading === undefined) await source.return(undefined);
    else void reading.then(() => source.return(undefined)).catch(() => {});
  }
}
