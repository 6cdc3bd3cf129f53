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
 * Closing it (`return()`) closes `source`: at once when no read of it is pending; when that read
 * settles otherwise (for an output follow, at the latest when the request's signal ends it), not
 * waited for here, so that a consumer that stops after a heartbeat is not held. A `next()` still
 * pending then ends (`done`).
 *
 * For adapters that can only yield (the RPC's `StreamOutput`); the REST writers keep their own
 * (`Pulse` in src/api/rest/output-writers.ts), which costs a batch nothing. An iterator object
 * rather than an async generator, whose steps (its own promises, the wait's) cost every batch of
 * every follower: here a batch costs one promise and one reaction. Nor a race with one beat
 * promise kept across reads: each race would leave a reaction on it holding that race's result
 * (a batch of output) until the beat came, so a busy follow would keep every byte it sent.
 */
export function withHeartbeats<T>(
  source: AsyncGenerator<T>,
  clock: Clock,
  ms: number,
): AsyncGenerator<T | HeartbeatEvent, void, undefined> {
  return new Heartbeats(source, clock, ms);
}

type Step<T> = IteratorResult<T | HeartbeatEvent, void>;
type Outcome<T> =
  | { readonly ok: true; readonly step: IteratorResult<T> }
  | { readonly ok: false; readonly err: unknown };

class Heartbeats<T> implements AsyncGenerator<T | HeartbeatEvent, void, undefined> {
  readonly #source: AsyncGenerator<T>;
  readonly #clock: Clock;
  readonly #ms: number;
  /** The read of `source` not yet handed on (a heartbeat answered the `next()` that made it). */
  #reading: Promise<IteratorResult<T>> | undefined;
  /** How that read settled while no `next()` waited for it: the next one's answer. */
  #settled: Outcome<T> | undefined;
  /** Answers the pending `next()` (and `#fail` fails it); set only while one waits. */
  #answer: ((step: Step<T>) => void) | undefined;
  #fail: ((err: unknown) => void) | undefined;
  /** A value was handed on since the last tick. */
  #yielded = false;
  #timer: ClockTimer | undefined;
  #done = false;

  constructor(source: AsyncGenerator<T>, clock: Clock, ms: number) {
    this.#source = source;
    this.#clock = clock;
    this.#ms = ms;
    this.#timer = clock.setTimer(this.#tick, ms);
  }

  readonly #tick = (): void => {
    const answer = this.#answer;
    if (!this.#yielded && answer !== undefined) {
      // A whole period without a value while a `next()` waits for one: the heartbeat.
      this.#answer = undefined;
      this.#fail = undefined;
      answer({ done: false, value: HEARTBEAT });
    }
    // Otherwise a value went out this period, or the consumer holds one (a slow client's write):
    // no silence of the source.
    this.#yielded = false;
    this.#timer = this.#clock.setTimer(this.#tick, this.#ms);
  };

  next(): Promise<Step<T>> {
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    const settled = this.#settled;
    if (settled !== undefined) {
      this.#settled = undefined;
      this.#reading = undefined;
      return settled.ok
        ? Promise.resolve(this.#handOn(settled.step))
        : Promise.reject(this.#failed(settled.err));
    }
    if (this.#reading === undefined) {
      const reading = this.#source.next();
      this.#reading = reading;
      // One reaction per read, however many `next()`s heartbeats answer while it is pending: one
      // per call would stay on it until the source yields, a quiet job's follow gaining one a beat
      // for hours. Its failure is handled here too, closed or not: never an unhandled rejection.
      reading.then(
        (step) => this.#settle(reading, { ok: true, step }),
        (err: unknown) => this.#settle(reading, { ok: false, err }),
      );
    }
    return new Promise<Step<T>>((resolve, reject) => {
      this.#answer = resolve;
      this.#fail = reject;
    });
  }

  /** `reading` settled: the waiting `next()` is answered, or the outcome kept for the next one. */
  #settle(reading: Promise<IteratorResult<T>>, outcome: Outcome<T>): void {
    // Closed meanwhile (`return()` let go of it).
    if (this.#reading !== reading) return;
    const answer = this.#answer;
    const fail = this.#fail;
    if (answer === undefined || fail === undefined) {
      // A heartbeat answered the call that made it: the read is the next call's.
      this.#settled = outcome;
      return;
    }
    this.#answer = undefined;
    this.#fail = undefined;
    this.#reading = undefined;
    if (outcome.ok) answer(this.#handOn(outcome.step));
    else fail(this.#failed(outcome.err));
  }

  #handOn(step: IteratorResult<T>): Step<T> {
    if (step.done) this.#finish();
    else this.#yielded = true;
    return step;
  }

  #failed(err: unknown): unknown {
    this.#finish();
    return err;
  }

  async return(): Promise<Step<T>> {
    if (this.#done) return { done: true, value: undefined };
    this.#finish();
    const answer = this.#answer;
    this.#answer = undefined;
    this.#fail = undefined;
    answer?.({ done: true, value: undefined });
    const reading = this.#reading;
    this.#reading = undefined;
    this.#settled = undefined;
    if (reading === undefined) await this.#source.return(undefined);
    else void reading.then(() => this.#source.return(undefined)).catch(() => {});
    return { done: true, value: undefined };
  }

  async throw(err: unknown): Promise<Step<T>> {
    await this.return();
    throw err;
  }

  #finish(): void {
    this.#done = true;
    this.#timer?.clear();
    this.#timer = undefined;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }
}
