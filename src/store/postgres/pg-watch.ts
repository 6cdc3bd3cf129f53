import pg from 'pg';
import type { Clock, ClockTimer } from '../../core/clock.ts';

/** The channels the `jobs_notify` trigger (migration 0001-jobs) sends on; `putQueue` sends on the first too. */
export const WORK_CHANNEL = 'jobworker_work';
export const ENDED_CHANNEL = 'jobworker_job_ended';
/** Sent when a job comes to wait for a time (payload: its `run_at` in ms; migration 0006-due-notify). */
export const DUE_CHANNEL = 'jobworker_due';
/** The channel the triggers on `users` and `tokens` send on (migration 0004-cluster). */
export const ACCOUNTS_CHANNEL = 'jobworker_accounts';

/**
 * A wake-up from the store. `work`: a job of the queue named by `payload` became ready to claim,
 * or one gave its slot back, or the queue was resumed or its limit raised, or (told by this store
 * alone) a claim passed over it while another session held its row; an empty payload means "look
 * at every queue" (sent after the connection was restored, as notifications sent while it was down
 * are lost; `accounts` likewise).
 * `accounts`: users or tokens changed (the payload names the table). `ended`: the job
 * whose id is `payload` reached a final status. `due`: a job now waits until `payload` (ms since
 * the epoch) to be ready: a delay, or a retry's backoff.
 */
export interface StoreWakeUp {
  readonly channel: 'work' | 'ended' | 'accounts' | 'due';
  readonly payload: string;
}

/** Each channel listened to, and the wake-up it is told as. */
const CHANNELS = new Map<string, StoreWakeUp['channel']>([
  [WORK_CHANNEL, 'work'],
  [ENDED_CHANNEL, 'ended'],
  [ACCOUNTS_CHANNEL, 'accounts'],
  [DUE_CHANNEL, 'due'],
]);

export type StoreWakeUpListener = (event: StoreWakeUp) => void;

/** The first wait before reconnecting, doubled after each failure up to the maximum. */
export const WATCH_RETRY_MS = { first: 100, max: 10_000 } as const;

/**
 * How often the listening connection is asked a `select 1` (on the clock), and how long its answer
 * may take (real time, pg's `query_timeout`) before the connection counts as dropped.
 */
const WATCH_PROBE_MS = { every: 15_000, timeout: 10_000 } as const;

export interface PgWatchOptions {
  /** Overrides `WATCH_PROBE_MS` (tests). */
  readonly probe?: { readonly every: number; readonly timeout: number };
  /** Its session's name in `pg_stat_activity` (default `jobworker-listen`). */
  readonly applicationName?: string;
}

/**
 * One connection of its own (a pooled one would be handed to queries) with LISTEN on every
 * channel. When it drops it is opened again after a backoff timed by `clock`, and the listener
 * gets a `work` wake-up with an empty payload once it is back. A connection that a firewall, a
 * NAT or a failover dropped without a word tells nothing: it only ever reads, and a silent loss
 * would leave this node deaf to new work and to revoked tokens for good. So it is asked a
 * `select 1` every `WATCH_PROBE_MS.every`, and one that does not answer in time counts as dropped
 * (TCP keepalive is on too). `close` ends it for good.
 */
export class PgWatch {
  readonly #url: string;
  readonly #clock: Clock;
  readonly #listener: StoreWakeUpListener;
  readonly #probe: { readonly every: number; readonly timeout: number };
  readonly #applicationName: string;
  #client: pg.Client | null = null;
  #timer: ClockTimer | null = null;
  #probeTimer: ClockTimer | null = null;
  #closed = false;
  #retryMs: number = WATCH_RETRY_MS.first;

  constructor(url: string, clock: Clock, listener: StoreWakeUpListener, options: PgWatchOptions = {}) {
    this.#url = url;
    this.#clock = clock;
    this.#listener = listener;
    this.#probe = options.probe ?? WATCH_PROBE_MS;
    this.#applicationName = options.applicationName ?? 'jobworker-listen';
  }

  /** Tells the listener of a wake-up that did not come through the store (the store's own). */
  tell(event: StoreWakeUp): void {
    if (!this.#closed) this.#listener(event);
  }

  /** Connects and listens; the first connection's failure is thrown (later ones are retried). */
  async start(): Promise<void> {
    await this.#connect();
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#url,
      application_name: this.#applicationName,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      query_timeout: this.#probe.timeout,
      // A reconnection to an address that swallows packets (a failover's) gives up as a probe does.
      connectionTimeoutMillis: this.#probe.timeout,
    });
    let started = false;
    let dropped = false;
    const onDrop = () => {
      if (dropped) return;
      dropped = true;
      if (this.#client === client) this.#client = null;
      this.#probeTimer?.clear();
      this.#probeTimer = null;
      client.end().catch(() => {});
      this.#scheduleReconnect();
    };
    const armProbe = (): void => {
      this.#probeTimer = this.#clock.setTimer(() => {
        this.#probeTimer = null;
        if (this.#closed || dropped) return;
        client.query('select 1').then(() => {
          if (!this.#closed && !dropped) armProbe();
        }, onDrop);
      }, this.#probe.every);
    };
    // Attached before connecting: an 'error' without a listener would end the process. Until the
    // LISTENs are in place, the failing call rejects instead and `start` (or the retry) handles it.
    client.on('error', () => {
      if (started) onDrop();
    });
    client.on('end', () => {
      if (started) onDrop();
    });
    client.on('notification', (message) => {
      const channel = CHANNELS.get(message.channel);
      if (channel !== undefined) this.#listener({ channel, payload: message.payload ?? '' });
    });
    try {
      await client.connect();
      for (const name of CHANNELS.keys()) await client.query(`listen ${name}`);
    } catch (err) {
      dropped = true;
      await client.end().catch(() => {});
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    started = true;
    this.#client = client;
    this.#retryMs = WATCH_RETRY_MS.first;
    armProbe();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#timer !== null) return;
    const wait = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, WATCH_RETRY_MS.max);
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = null;
      if (this.#closed) return;
      this.#connect().then(
        // What was sent while the connection was down is lost: look at everything once.
        () => {
          if (this.#closed) return;
          this.#listener({ channel: 'work', payload: '' });
          this.#listener({ channel: 'accounts', payload: '' });
        },
        () => this.#scheduleReconnect(),
      );
    }, wait);
  }

  /** Whether a LISTEN connection is open now. */
  get connected(): boolean {
    return this.#client !== null;
  }

  /** The backend pid of the LISTEN connection (for tests that cut it), or null while down. */
  get backendPid(): number | null {
    return (this.#client as unknown as { processID?: number } | null)?.processID ?? null;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = null;
    this.#probeTimer?.clear();
    this.#probeTimer = null;
    const client = this.#client;
    this.#client = null;
    if (client !== null) {
      // `#closed` is set, so the 'end' this causes schedules nothing.
      await client.end().catch(() => {});
    }
  }
}
