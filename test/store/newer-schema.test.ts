import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import pg from 'pg';
import { NewerSchemaError } from '../../src/store/newer-schema.ts';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrate-postgres.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrate-sqlite.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { createTestDatabase } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';

/**
 * A database migrated by a newer jobworker (an older node restarting during a rolling upgrade, a
 * rollback) is refused at start with what to do, not with Kysely's "corrupted migrations:
 * previously executed migration ... is missing"; and nothing of it is changed.
 */

const newestOf = (migrations: Readonly<Record<string, unknown>>) => Object.keys(migrations).sort().at(-1)!;

/** The refusal `err` must be: naming the database, the newest migration known, the unknown ones, what to do. */
function assertRefusal(err: unknown, database: RegExp, newest: string, unknown: readonly string[]): true {
  assert.ok(err instanceof NewerSchemaError, String(err));
  assert.deepEqual(err.unknown, unknown);
  assert.equal(err.newestKnown, newest);
  assert.match(err.message, database);
  assert.ok(err.message.includes(`was migrated by a newer jobworker: it has migration`), err.message);
  for (const name of [...unknown, newest]) assert.ok(err.message.includes(name), `${name} in ${err.message}`);
  assert.match(err.message, /upgrade it to the version that migrated the database/);
  assert.match(err.message, /restore the backup of the database taken before the upgrade/);
  assert.doesNotMatch(err.message, /corrupted migrations/);
  return true;
}

describe('SQLite: a database migrated by a newer jobworker', () => {
  it('is refused at open, naming the newest migration this build knows and the unknown ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-newer-schema-'));
    const path = join(dir, 'jobworker.db');
    try {
      await (await SqliteJobStore.open(path)).close();
      // What the next release's jobworker records when it migrates this file.
      const next = ['0015-next-release', '0016-after-that'];
      const raw = new DatabaseSync(path);
      for (const name of next)
        raw
          .prepare('insert into kysely_migration (name, timestamp) values (?, ?)')
          .run(name, new Date().toISOString());
      raw.close();

      await assert.rejects(SqliteJobStore.open(path), (err) =>
        assertRefusal(
          err,
          new RegExp(`The job database ${path.replace(/[.]/g, '\\.')} was migrated`),
          newestOf(SQLITE_MIGRATIONS),
          next,
        ),
      );

      // Untouched: what the newer jobworker recorded is still there, and it runs on as before.
      const check = new DatabaseSync(path);
      const names = check
        .prepare('select name from kysely_migration order by name')
        .all()
        .map((r) => r.name);
      check.close();
      assert.deepEqual(names, [...Object.keys(SQLITE_MIGRATIONS), ...next]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgreSQL: a database migrated by a newer jobworker', () => {
  it('is refused at open, naming the database (password hidden), the newest migration known and the unknown one', async () => {
    const database = await createTestDatabase('newer_schema');
    try {
      await (await PgJobStore.open(database.url)).close();
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        await client.query(
          `insert into kysely_migration (name, timestamp) values ('0011-next-release', now()::text)`,
        );
      } finally {
        await client.end();
      }
      const url = new URL(database.url);
      url.password = 'secret';
      await assert.rejects(PgJobStore.open(url.toString()), (err) => {
        assert.doesNotMatch((err as Error).message, /secret/);
        return assertRefusal(
          err,
          /The job database postgres:\/\/postgres:\*\*\*@/,
          newestOf(POSTGRES_MIGRATIONS),
          ['0011-next-release'],
        );
      });
    } finally {
      await database.drop();
    }
  });

  it('is refused as clearly when a newer node migrates it while this one waits for the migration lock', async () => {
    const database = await createTestDatabase('newer_schema_race');
    const newer = new pg.Client({ connectionString: database.url });
    try {
      await (await PgJobStore.open(database.url)).close();
      await newer.connect();
      // The newer node holds the migrator's lock (Kysely's advisory lock id) while it migrates:
      // this node's look finds nothing unknown yet, then it waits for the lock.
      await newer.query('select pg_advisory_lock(3853314791062309107)');
      await newer.query('begin');
      await newer.query(
        `insert into kysely_migration (name, timestamp) values ('0011-next-release', now()::text)`,
      );
      const opening = PgJobStore.open(database.url).then(
        async (store) => {
          await store.close();
          return undefined;
        },
        (err: unknown) => err,
      );
      await until('the older node to wait for the migration lock', async () => {
        const { rows } = await newer.query(
          `select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`,
        );
        return rows[0].n > 0;
      });
      await newer.query('commit');
      await newer.query('select pg_advisory_unlock(3853314791062309107)');
      assertRefusal(await opening, /The job database postgres:\/\//, newestOf(POSTGRES_MIGRATIONS), [
        '0011-next-release',
      ]);
    } finally {
      await newer.end();
      await database.drop();
    }
  });
});
