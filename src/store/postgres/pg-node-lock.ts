import pg from 'pg';
import { type Clock, type ClockTimer, pauseOn, steadyMs } from '../../core/clock.ts';
import { ValidationError } from '../../core/errors.ts';

/** How a node's hold on its id behaves; the defaults suit a server, tests shorten them. */
export interface NodeLockOptions {
  readonly clock: Clock;
  /**
   * How long a start waits for the id to be let go before it is refused (default
   * `NODE_ID_WAIT_MS`): a host that vanished keeps its session until PostgreSQL finds it dead (the
   * keepalives below, about a minute), and its node started again elsewhere must not be refused
   * for that.
   */
  readonly waitMs?: number;
  /** Between two tries while waiting, and the first wait before taking the hold again (default 1 s). */
  readonly retryMs?: number;
  /** Told of a wait at the start, and of a hold lost and taken again (or taken by another). */
  readonly log: (level: 'warn' | 'error', message: string) => void;
}

/** Longer than PostgreSQL takes to find a vanished host's session dead (`KEEPALIVES`: 60 s). */
export const NODE_ID_WAIT_MS = 75_000;
const DEFAULT_RETRY_MS = 1_000;
/** The longest wait between two tries to take a lost hold again. */
const MAX_RETAKE_MS = 30_000;
/**
 * How often the holding connection is asked a `select 1` (on the clock), and how long its answer
 * may take (pg's `query_timeout`), as `PgWatch` asks its own: a connection that a firewall or a NAT
 * dropped without a word has lost the hold, and must be noticed and taken again.
 */
const PROBE_MS = { every: 15_000, timeout: 10_000 } as const;

/**
 * What PostgreSQL is asked of this connection's session, so that it finds a vanished host's
 * session dead within about a minute (30 s idle, then 3 probes 10 s apart) and lets its hold go.
 * A connection over a Unix socket ignores them.
 */
const KEEPALIVES = [
  'set tcp_keepalives_idle = 30',
  'set tcp_keepalives_interval = 10',
  'set tcp_keepalives_count = 3',
];

/**
 * A node's hold on its id (`serve --node-id`) for as long as it runs: a PostgreSQL session-level
 * advisory lock, named after the id, on a connection of its own. A second server started with the
 * same id (on this host or another, by a copied configuration or a shared host name) is refused
 * at its start, instead of both claiming, sweeping and adopting jobs as one node and running
 * them twice. The hold goes with the session: a process that ends lets it go at once, and a host
 * that vanishes once PostgreSQL finds its session dead (`KEEPALIVES`). A connection that drops
 * while the node runs loses the hold: it is taken again on the clock, and should another server
 * have taken it meanwhile, that is logged as an error at each try until it is let go.
 */
export class PgNodeLock {
  readonly #url: string;
  readonly #id: string;
  readonly #options: NodeLockOptions;
  #client: pg.Client | undefined;
  /** The connection of a try under way: ended by `release`, so that a try never outlives it. */
  #trying: pg.Client | undefined;
  #probeTimer: ClockTimer | undefined;
  readonly #closing = new AbortController();
  #retaking: Promise<void> | undefined;

  private constructor(url: string, id: string, options: NodeLockOptions) {
    this.#url = url;
    this.#id = id;
    this.#options = options;
  }

  /**
   * Takes the hold on `id`, waiting up to `waitMs` while another session has it. Throws a
   * ValidationError on `nodeId` naming where that session comes from, when it does not let go.
   */
  static async acquire(
    url: string,
    id: string,
    options: NodeLockOptions,
    made?: (lock: PgNodeLock) => void,
  ): Promise<PgNodeLock> {
    const lock = new PgNodeLock(url, id, options);
    // Told before the wait: a store closed meanwhile releases it, which ends the wait (and a hold
    // taken in the last try), instead of a hold nothing would ever let go.
    made?.(lock);
    const { clock } = options;
    const waitMs = options.waitMs ?? NODE_ID_WAIT_MS;
    const started = steadyMs(clock);
    const closed = async () => {
      await lock.release();
      return new Error(`The store closed while node id "${id}" was being taken`);
    };
    for (let tries = 0; ; tries++) {
      const holder = await lock.#take();
      if (lock.#closing.signal.aborted) throw await closed();
      if (holder === undefined) return lock;
      if (steadyMs(clock) - started >= waitMs) {
        throw new ValidationError(
          'nodeId',
          `Node id "${id}" is in use by another running server (${holder}), which has it in PostgreSQL for as long as it runs: give each node its own --node-id (docs/cluster.md)`,
        );
      }
      if (tries === 0) {
        options.log(
          'warn',
          `node id "${id}" is held by another session (${holder}); waiting up to ${Math.round(waitMs / 1000)} s for it to let go (a host that vanished keeps it until PostgreSQL finds its session dead)`,
        );
      }
      // A close ends the pause at once: the next look above sees it, with no new connection.
      await pauseOn(clock, options.retryMs ?? DEFAULT_RETRY_MS, lock.#closing.signal).catch(() => undefined);
      if (lock.#closing.signal.aborted) throw await closed();
    }
  }

  /** Lets the id go (the session ends). */
  async release(): Promise<void> {
    this.#closing.abort();
    this.#probeTimer?.clear();
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
    await this.#trying?.end().catch(() => {});
    await this.#retaking;
  }

  /**
   * One try on a connection of its own: undefined once held (the connection kept), else who holds
   * it (the connection ended). A failure to connect or ask is thrown.
   */
  async #take(): Promise<string | undefined> {
    const client = new pg.Client({
      connectionString: this.#url,
      // What another server's refusal names (below): where this hold comes from.
      application_name: `jobworker node ${this.#id}`.slice(0, 63),
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: PROBE_MS.timeout,
      query_timeout: PROBE_MS.timeout,
    });
    // Attached before connecting: an 'error' without a listener would end the process.
    client.on('error', () => {});
    this.#trying = client;
    try {
      await client.connect();
      for (const statement of KEEPALIVES) await client.query(statement).catch(() => undefined);
      const { rows } = await client.query<{ held: boolean }>(
        "select pg_try_advisory_lock(hashtextextended('jobworker node id: ' || $1, 0)) as held",
        [this.#id],
      );
      if (rows[0]?.held === true) {
        if (this.#closing.signal.aborted) {
          await client.end().catch(() => {});
          return undefined;
        }
        this.#client = client;
        client.on('end', () => this.#dropped(client));
        this.#armProbe(client);
        return undefined;
      }
      // The session that holds this very lock: a bigint key is kept as its high and low halves.
      const holder = await client
        .query<{ client_addr: string | null; backend_start: Date }>(
          `with k as (select hashtextextended('jobworker node id: ' || $1, 0) as key)
           select host(a.client_addr) as client_addr, a.backend_start
           from k, pg_locks l join pg_stat_activity a on a.pid = l.pid
           where l.locktype = 'advisory' and l.granted and l.objsubid = 1
             and l.classid = ((k.key >> 32) & 4294967295)::oid and l.objid = (k.key & 4294967295)::oid
           limit 1`,
          [this.#id],
        )
        .then(({ rows: [row] }) =>
          row === undefined
            ? 'its session could not be seen'
            : `connected from ${row.client_addr ?? 'a local socket'} since ${row.backend_start.toISOString()}`,
        )
        .catch(() => 'its session could not be seen');
      await client.end().catch(() => {});
      return holder;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    } finally {
      if (this.#trying === client) this.#trying = undefined;
    }
  }

  /** Asks the holding connection a `select 1` now and then; one that does not answer is ended. */
  #armProbe(client: pg.Client): void {
    this.#probeTimer = this.#options.clock.setTimer(() => {
      this.#probeTimer = undefined;
      if (this.#client !== client) return;
      client.query('select 1').then(
        () => this.#armProbe(client),
        // Ending it tells `#dropped`, which takes the hold again.
        () => void client.end().catch(() => {}),
      );
    }, PROBE_MS.every);
  }

  /** The connection that held the id ended: the hold went with it, and is taken again. */
  #dropped(client: pg.Client): void {
    if (this.#client !== client || this.#closing.signal.aborted) return;
    this.#client = undefined;
    this.#probeTimer?.clear();
    this.#probeTimer = undefined;
    this.#options.log(
      'error',
      `the hold on node id "${this.#id}" was lost with its connection; taking it again`,
    );
    this.#retaking = this.#retake();
  }

  async #retake(): Promise<void> {
    const { clock, log } = this.#options;
    let waitMs = this.#options.retryMs ?? DEFAULT_RETRY_MS;
    const signal = this.#closing.signal;
    while (!signal.aborted) {
      // Rejects once released: the loop then ends.
      await pauseOn(clock, waitMs, signal).catch(() => undefined);
      if (signal.aborted) return;
      try {
        const holder = await this.#take();
        if (holder === undefined) {
          if (!signal.aborted) log('warn', `the hold on node id "${this.#id}" is taken again`);
          return;
        }
        log(
          'error',
          `node id "${this.#id}" was taken by another server (${holder}) while this one's hold was lost: two servers now act as one node; stop one of them`,
        );
      } catch {
        // The store unreachable: tried again at the next wait.
      }
      waitMs = Math.min(waitMs * 2, MAX_RETAKE_MS);
    }
  }
}
