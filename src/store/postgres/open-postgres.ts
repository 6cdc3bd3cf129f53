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
}

export const POSTGRES_POOL_DEFAULTS = {
  max: 10,
  connectionTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
} as const;

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
    application_name: 'jobworker',
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
