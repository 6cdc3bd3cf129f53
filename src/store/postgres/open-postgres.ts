import { createHash, randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { StoreSchema } from '../schema.ts';

/** Connection pool settings of a PostgreSQL store (docs/storage.md, "PostgreSQL"). */
export interface PostgresPoolOptions {
  /**
   * Most connections of this pool (default 10). Each node of a cluster opens its own pool, and
   * five connections more (docs/storage.md), so the server's `max_connections` must exceed
   * nodes × (this + 5), plus what else connects.
   */
  readonly max?: number;
  /** How long a query waits for a free connection before failing, in ms (default 10,000). */
  readonly connectionTimeoutMs?: number;
  /** Idle connections are closed after this long, in ms (default 30,000). */
  readonly idleTimeoutMs?: number;
  /**
   * What its sessions are called in `pg_stat_activity` (default `jobworker`): a node's pools carry
   * `sessionName(nodeId, tag)`, which is how a sweep finds the sessions of a node it declared lost.
   */
  readonly applicationName?: string;
  /**
   * `idle_in_transaction_session_timeout` of its sessions, in ms (default 0: none). A node frozen
   * (SIGSTOP, a long pause of its VM) or cut off in the middle of a transaction would otherwise hold
   * that transaction's row locks until it thaws, or, when its host vanished, until PostgreSQL finds
   * the connection dead: the server ends such a session after this long, and its locks go.
   */
  readonly idleInTransactionMs?: number;
  /** `lock_timeout` of its sessions, in ms (default 0: a wait for a row lock has no bound). */
  readonly lockTimeoutMs?: number;
}

export const POSTGRES_POOL_DEFAULTS = {
  max: 10,
  connectionTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  applicationName: 'jobworker',
  idleInTransactionMs: 0,
  lockTimeoutMs: 0,
} as const;

/**
 * TCP keepalives PostgreSQL's side of each session sends (seconds): a node whose host vanished
 * (powered off, cut off) is found dead within about a minute, its session ended and its locks let
 * go, where the kernel's defaults take two hours. A connection over a Unix socket ignores them.
 * The node's own side sends keepalives too (`keepAlive`), so that it finds a vanished server.
 */
export const SERVER_KEEPALIVES = { idle: 30, interval: 10, count: 3 } as const;

/** Longest `application_name` PostgreSQL keeps (NAMEDATALEN - 1); it cuts a longer one. */
const APPLICATION_NAME_MAX = 63;

/**
 * The `application_name` of the sessions of node `nodeId`'s pools, in one server: `jobworker <id>
 * <tag>`, where `tag` is that server's own (`newSessionTag`), recorded in the node's row when it
 * joins. A sweep that declares the node lost ends the sessions of the server that last joined as
 * it; the id alone would also name those of a server started again under the id meanwhile (its
 * migration, its join), which would then fail. Without a tag: `jobworker <id>`, what servers before
 * the tags named them (a sweep still ends those of a node whose row records no name). A node id may
 * be 63 characters, which PostgreSQL would cut, and two long ids alike in their first characters
 * would then share a name (a sweep of one would end the other's sessions): a name that does not
 * fit carries a digest of the whole id in place of its end.
 */
export function sessionName(nodeId: string, tag?: string): string {
  const suffix = tag === undefined ? '' : ` ${tag}`;
  const whole = `jobworker ${nodeId}${suffix}`;
  if (Buffer.byteLength(whole) <= APPLICATION_NAME_MAX) return whole;
  const digest = createHash('sha256').update(nodeId).digest('hex').slice(0, 12);
  const kept = APPLICATION_NAME_MAX - 'jobworker '.length - '~'.length - digest.length - suffix.length;
  return `jobworker ${nodeId.slice(0, kept)}~${digest}${suffix}`;
}

/** A server's own tag for `sessionName`: 8 hex digits, drawn when it opens its store. */
export function newSessionTag(): string {
  return randomBytes(4).toString('hex');
}

/**
 * The session timeouts of a node's main pool for a node timeout (`serve --node-timeout`), each
 * below it so that a frozen peer's locks go before it is declared lost: a session idle in a
 * transaction is ended after a third of it (at least 1 s), and a wait for a lock gives up after
 * two thirds (by then the holder, were it frozen, was ended; a holder that is not is busy for
 * longer than a node may be silent, and the caller is told the store is unavailable).
 */
export function sessionTimeouts(nodeTimeoutMs: number): {
  idleInTransactionMs: number;
  lockTimeoutMs: number;
} {
  const idleInTransactionMs = Math.max(1000, Math.floor(nodeTimeoutMs / 3));
  return {
    idleInTransactionMs,
    lockTimeoutMs: Math.max(idleInTransactionMs + 500, Math.floor((nodeTimeoutMs * 2) / 3)),
  };
}

/** PostgreSQL's type id of `int8` (bigint). */
const INT8_OID = 20;

/**
 * Opens a pool on the database at `url` (`postgres://user@host:port/db`) as a Kysely instance.
 *
 * The schema stores times as bigint Unix milliseconds and counts as bigint, like the SQLite store,
 * so both share one row mapping (`store/job-row.ts`). `pg` returns int8 as a string, since it can
 * exceed 2^53; every int8 here is a time in ms or a byte count far below that, so they are read as
 * numbers, by this pool's own parser (the global `pg.types` is left alone for other users of `pg`).
 */
export function openPostgres(url: string, options: PostgresPoolOptions = {}): Kysely<StoreSchema> {
  const settings = { ...POSTGRES_POOL_DEFAULTS, ...options };
  const pool = new pg.Pool({
    connectionString: url,
    max: settings.max,
    connectionTimeoutMillis: settings.connectionTimeoutMs,
    idleTimeoutMillis: settings.idleTimeoutMs,
    application_name: settings.applicationName,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection that the server drops (a restart, a network cut) emits 'error' on the
  // pool; unhandled, that would end the process. The next query opens a new connection.
  pool.on('error', () => {});
  // Asked of each new connection before the pool hands it out (its queries queue behind this).
  // Settings of the session rather than startup options, which a pooler such as PgBouncer refuses.
  // A failure leaves the connection as it is: the query that follows reports what is wrong.
  const setup = `select set_config('tcp_keepalives_idle', '${SERVER_KEEPALIVES.idle}', false),
    set_config('tcp_keepalives_interval', '${SERVER_KEEPALIVES.interval}', false),
    set_config('tcp_keepalives_count', '${SERVER_KEEPALIVES.count}', false),
    set_config('idle_in_transaction_session_timeout', '${Math.floor(settings.idleInTransactionMs)}', false),
    set_config('lock_timeout', '${Math.floor(settings.lockTimeoutMs)}', false)`;
  pool.on('connect', (client) => {
    // A session ended while a caller holds its connection between two statements (the timeout
    // above, a sweep that ended this node's sessions, a failover) emits 'error' on it, which the
    // pool listens to only while the connection is idle: unheard, that would end the process. The
    // statement under way or the next fails instead, and the pool drops the connection.
    client.on('error', () => {});
    client.query(setup).catch(() => {});
  });
  return new Kysely<StoreSchema>({ dialect: new PostgresDialect({ pool }) });
}

/** `url` with any password replaced by `***`, for logs and error messages. */
export function redactPostgresUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparsable url)';
  }
}

/** Whether `value` names a PostgreSQL store: a `postgres://` or `postgresql://` URL. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//.test(value);
}
