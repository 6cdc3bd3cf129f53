import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL server the tests use: the local one on 127.0.0.1:5432 (trust authentication, as
 * Debian's package sets it up for local users here), or `JOBWORKER_TEST_POSTGRES`, a URL of a
 * database whose user may create and drop databases.
 */
export const TEST_POSTGRES_URL =
  process.env.JOBWORKER_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** What a test run says when it cannot reach the server: tests never skip silently. */
const HOW_TO_START =
  'start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` ' +
  '(.ci/run does this), or point JOBWORKER_TEST_POSTGRES at a database whose user may create databases';

/** A database of its own for one test file: its URL, and a `drop` that removes it. */
export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** Drops the database, ending any connection still open to it. */
  drop(): Promise<void>;
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `The tests need PostgreSQL at ${TEST_POSTGRES_URL}, which is not reachable (${String(err)}): ${HOW_TO_START}`,
      {
        cause: err,
      },
    );
  }
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates an empty database named `jobworker_test_<label>_<random>` and returns its URL. Call
 * `drop` in an `after` hook; databases left by a killed run are recognisable by the prefix.
 */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const safe = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 24);
  const name = `jobworker_test_${safe}_${randomBytes(4).toString('hex')}`;
  await admin((client) => client.query(`create database ${name}`));
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      admin(async (client) => void (await client.query(`drop database if exists ${name} with (force)`))),
  };
}
