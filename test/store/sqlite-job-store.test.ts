import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync, StatementSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { newJobId } from '../../src/core/ids.ts';
import type { Job } from '../../src/core/job.ts';
import { jobToRow } from '../../src/store/job-row.ts';
import type { JobListQuery } from '../../src/store/job-store.ts';
import { checkListQuery } from '../../src/store/list-query.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import { countInQueue, QUEUE_COUNTS } from '../../src/store/sqlite/compiled-statements.ts';
import { listActiveQuery, listJobsQuery } from '../../src/store/sqlite/list-jobs-query.ts';
import { migrateSqlite, SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrate-sqlite.ts';
import {
  openSqliteConnection,
  SQLITE_BUSY_TIMEOUT_MS,
  WAL_CHECKPOINT_PAGES,
} from '../../src/store/sqlite/open-sqlite-connection.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { describeJobStoreContract } from './job-store-contract.ts';
import { makeJob, makeRichJob } from './make-job.ts';

describeJobStoreContract('SqliteJobStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jobworker-store-'));
  const store = await SqliteJobStore.open(join(dir, 'jobs.db'));
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** Runs `test` with the path of a database file in a fresh directory, removed afterwards. */
async function withDatabaseFile(test: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'jobworker-sqlite-'));
  try {
    await test(join(dir, 'jobs.db'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function withConnection(path: string, test: (db: Kysely<StoreSchema>) => Promise<void>): Promise<void> {
  const db = openSqliteConnection(path);
  try {
    await test(db);
  } finally {
    await db.destroy();
  }
}

async function queryPlan(db: Kysely<StoreSchema>, query: CompiledQuery): Promise<string[]> {
  const { rows } = await db.executeQuery<{ detail: string }>(
    CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
  );
  return rows.map((r) => r.detail);
}

async function schemaOf(db: Kysely<StoreSchema>): Promise<unknown[]> {
  const { rows } = await sql`select type, name, tbl_name, sql from sqlite_schema order by name`.execute(db);
  return rows;
}

/** Each list query form, with the indexes its plan must use. */
const LIST_FORMS: { form: string; query: Omit<JobListQuery, 'limit' | 'cursor'>; indexes: string[] }[] = [
  { form: 'no filter', query: {}, indexes: ['sqlite_autoindex_jobs_1'] },
  { form: 'status', query: { status: ['running'] }, indexes: ['jobs_by_status'] },
  { form: 'statuses', query: { status: ['queued', 'failed', 'lost'] }, indexes: ['jobs_by_status'] },
  { form: 'owner', query: { owner: 'alice' }, indexes: ['jobs_by_owner'] },
  { form: 'name', query: { name: 'backup' }, indexes: ['jobs_by_name'] },
  { form: 'queue', query: { queue: 'batch' }, indexes: ['jobs_by_queue'] },
  // No index holds a substring: text filters the rows of the range the other filters read.
  { form: 'text', query: { text: 'backup' }, indexes: ['sqlite_autoindex_jobs_1'] },
  { form: 'queue + text', query: { queue: 'batch', text: 'backup' }, indexes: ['jobs_by_queue'] },
  // Either index reads in id order; which one depends on SQLite's guess of the narrower range.
  { form: 'queue + statuses', query: { queue: 'batch', status: ['failed', 'lost'] }, indexes: [] },
  { form: 'owner + queue + text', query: { owner: 'alice', queue: 'batch', text: 'x' }, indexes: [] },
  {
    form: 'label',
    query: { label: { key: 'team', value: 'data' } },
    indexes: ['job_labels_by_label', 'sqlite_autoindex_jobs_1'],
  },
  {
    form: 'owner + status',
    query: { owner: 'alice', status: ['failed'] },
    indexes: ['jobs_by_owner_status'],
  },
  {
    form: 'owner + statuses',
    query: { owner: 'alice', status: ['succeeded', 'failed'] },
    indexes: ['jobs_by_owner_status'],
  },
  { form: 'owner + name', query: { owner: 'alice', name: 'backup' }, indexes: ['jobs_by_owner_name'] },
  {
    form: 'owner + label',
    query: { owner: 'alice', label: { key: 'team', value: 'data' } },
    indexes: ['job_labels_by_owner_label', 'sqlite_autoindex_jobs_1'],
  },
  {
    form: 'label + queue + text',
    query: { label: { key: 'team', value: 'data' }, queue: 'batch', text: 'x' },
    indexes: ['job_labels_by_label', 'jobs_by_queue'],
  },
];

/** Every table access in the plan goes through an index; nothing is sorted afterwards. */
function assertIndexedInOrder(plan: string[], what: string): void {
  const text = plan.join('\n');
  assert.doesNotMatch(text, /TEMP B-TREE/, `${what} sorts:\n${text}`);
  // A VIRTUAL TABLE scan is json_each over one row's own args (the text filter), not a table.
  for (const line of plan.filter((l) => /^(SCAN|SEARCH) /.test(l) && !/ VIRTUAL TABLE /.test(l))) {
    assert.match(
      line,
      / USING (COVERING )?INDEX | USING PRIMARY KEY /,
      `${what} reads a table without an index:\n${text}`,
    );
  }
}

function usesIndex(line: string, index: string): boolean {
  return line.includes(` INDEX ${index} `) || line.endsWith(` INDEX ${index}`);
}

describe('SqliteJobStore on SQLite', () => {
  it('reads one index range in id order for every list query form, without sorting', () =>
    withDatabaseFile(async (path) => {
      await (await SqliteJobStore.open(path)).close();
      await withConnection(path, async (db) => {
        for (const { form, query, indexes } of LIST_FORMS) {
          for (const cursor of [undefined, newJobId()]) {
            const what = `${form}${cursor === undefined ? '' : ' after a cursor'}`;
            const checked = checkListQuery({
              ...query,
              limit: 50,
              ...(cursor === undefined ? {} : { cursor }),
            });
            const plan = await queryPlan(db, listJobsQuery(db, checked));
            assertIndexedInOrder(plan, what);
            for (const index of indexes) {
              assert.ok(
                plan.some((l) => usesIndex(l, index)),
                `${what} uses ${index}:\n${plan.join('\n')}`,
              );
            }
            if ((query.status?.length ?? 0) > 1) {
              assert.ok(plan.includes('MERGE (UNION ALL)'), `${what} merges one range per status`);
            }
            if (cursor !== undefined) {
              // The cursor bounds the range read from the index rather than filtering rows.
              const driving = plan.filter((l) => l.startsWith('SEARCH') && !/[( ]id=\?\)$/.test(l));
              assert.ok(
                driving.length > 0 && driving.every((l) => /id<\?\)$/.test(l)),
                `${what}:\n${plan.join('\n')}`,
              );
            }
          }
        }
        for (const which of ['running', 'starting'] as const) {
          const active = await queryPlan(db, listActiveQuery(db, 'node-a', which));
          assertIndexedInOrder(active, `listActive ${which}`);
          assert.ok(
            active.some((l) => usesIndex(l, 'jobs_active_by_node')),
            active.join('\n'),
          );
        }
      });
    }));

  it("counts a queue's jobs through the partial index of just those jobs, not every job of the queue", () =>
    withDatabaseFile(async (path) => {
      await (await SqliteJobStore.open(path)).close();
      await withConnection(path, async (db) => {
        const indexOf = {
          active: 'jobs_active_by_queue',
          queued: 'jobs_waiting_by_queue',
          starting: 'jobs_waiting_by_queue',
          waitingUpTo: 'jobs_waiting_by_queue',
        } as const;
        for (const [count, sqlText] of Object.entries(QUEUE_COUNTS)) {
          const parameters = count === 'waitingUpTo' ? ['batch', 10] : ['batch'];
          const plan = await queryPlan(db, CompiledQuery.raw(sqlText, parameters));
          const index = indexOf[count as keyof typeof indexOf];
          assert.ok(
            plan.some((l) => usesIndex(l, index)),
            `${count} reads ${index}:\n${plan.join('\n')}`,
          );
          // And SQLite can run it (an index it cannot use for the query is an error, not a scan).
          const limit = count === 'waitingUpTo' ? 10 : undefined;
          assert.equal(await countInQueue(db, count as keyof typeof QUEUE_COUNTS, 'batch', limit), 0);
        }
      });
    }));

  it('keeps everything when reopened on the same file', () =>
    withDatabaseFile(async (path) => {
      const rich = makeRichJob();
      const running = makeJob({ status: 'running', spec: { labels: { team: 'data' } } });
      const queued = makeJob({ owner: 'bob' });
      let stopping: Job;
      const first = await SqliteJobStore.open(path);
      try {
        for (const job of [rich, running, queued]) await first.insertJob(job);
        stopping = await first.markStopRequested(running.id, {
          at: new Date(1234567),
          by: 'ops',
          graceMs: 7,
        });
      } finally {
        await first.close();
      }
      const second = await SqliteJobStore.open(path);
      try {
        assert.deepStrictEqual(await second.getJob(rich.id), rich);
        assert.deepStrictEqual(await second.getJob(running.id), stopping);
        assert.deepStrictEqual(await second.getJob(queued.id), queued);
        const all = await second.listJobs({ limit: 10 });
        assert.deepStrictEqual(
          all.jobs.map((j) => j.id),
          [queued.id, running.id, rich.id],
        );
        const labelled = await second.listJobs({ limit: 10, label: { key: 'team', value: 'data' } });
        assert.deepStrictEqual(labelled.jobs.map((j) => j.id).sort(), [rich.id, running.id].sort());
        assert.deepStrictEqual(await second.listRunning(running.node), [stopping]);
      } finally {
        await second.close();
      }
    }));

  it("keeps a queue's defaults once read, frozen, until putQueue changes them", () =>
    withDatabaseFile(async (path) => {
      const store = await SqliteJobStore.open(path);
      try {
        const first = await store.queueDefaults('kept');
        assert.equal(await store.queueDefaults('kept'), first, 'the second read is the first');
        assert.ok(
          Object.isFrozen(first) && Object.isFrozen(first.limits) && Object.isFrozen(first.limits.defaults),
        );
        await store.putQueue('kept', { defaultLimits: { memory: 1024 ** 3 } });
        const changed = await store.queueDefaults('kept');
        assert.notEqual(changed, first);
        assert.deepEqual(changed.limits.defaults, { memory: 1024 ** 3 });
        assert.ok(Object.isFrozen(changed.limits.defaults));
      } finally {
        await store.close();
      }
    }));

  it("looks for dependents at a job's end once any job had dependencies, also after a reopen", () =>
    withDatabaseFile(async (path) => {
      const now = new Date();
      const end = {
        status: 'succeeded' as const,
        exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
        finishedAt: now,
        outputBytes: { stdout: 0, stderr: 0 },
      };
      /** A running job, and a job admitted to wait for it. */
      const pair = async (store: SqliteJobStore): Promise<[Job, Job]> => {
        const dep = makeJob({ status: 'running', node: 'n' });
        await store.insertJob(dep);
        const admitted = await store.admitJob(makeJob({ spec: { after: [dep.id] } }), now);
        assert.ok(admitted.admitted);
        assert.equal(admitted.job.hold, 'after');
        return [dep, admitted.job];
      };
      const released = async (store: SqliteJobStore, dep: Job) =>
        (await store.settleDependents(dep.id, now)).map((job) => [job.id, job.status, job.hold]);
      const first = await SqliteJobStore.open(path);
      let later: [Job, Job];
      try {
        // No job has dependencies yet: an end settles nothing, without asking the database.
        const lone = makeJob({ status: 'running', node: 'n' });
        await first.insertJob(lone);
        await first.markFinished(lone.id, end);
        const skipped = await statementsDuring(() => first.settleDependents(lone.id, now));
        assert.deepEqual(skipped, { result: [], statements: 0 });
        // The first admission with dependencies makes every later end look for them.
        const [dep, waiting] = await pair(first);
        await first.markFinished(dep.id, end);
        const looked = await statementsDuring(() => released(first, dep));
        assert.deepEqual(looked.result, [[waiting.id, 'queued', null]]);
        assert.ok(looked.statements > 0, 'the end looked for its dependents');
        later = await pair(first);
      } finally {
        await first.close();
      }
      // A store opened on a database that has dependencies looks for them from its first end.
      const second = await SqliteJobStore.open(path);
      try {
        const [dep, waiting] = later;
        await second.markFinished(dep.id, end);
        assert.deepEqual(await released(second, dep), [[waiting.id, 'queued', null]]);
      } finally {
        await second.close();
      }
    }));

  it('runs each migration once: a second run is a no-op', () =>
    withDatabaseFile(async (path) => {
      await withConnection(path, async (db) => {
        assert.deepStrictEqual(await migrateSqlite(db), Object.keys(SQLITE_MIGRATIONS));
      });
      const store = await SqliteJobStore.open(path);
      const job = makeJob();
      await store.insertJob(job);
      await store.close();
      await withConnection(path, async (db) => {
        const before = await schemaOf(db);
        assert.deepStrictEqual(await migrateSqlite(db), []);
        assert.deepStrictEqual(await migrateSqlite(db), []);
        assert.deepStrictEqual(await schemaOf(db), before);
        const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
          db,
        );
        assert.deepStrictEqual(
          rows.map((r) => r.name),
          Object.keys(SQLITE_MIGRATIONS),
        );
      });
      const reopened = await SqliteJobStore.open(path);
      assert.deepStrictEqual(await reopened.getJob(job.id), job);
      await reopened.close();
    }));

  it('reads the limits of a job stored with API v1 names (memoryBytes, cpuMillis) in the documented form', () =>
    withDatabaseFile(async (path) => {
      const old = makeJob({ status: 'succeeded' });
      const store = await SqliteJobStore.open(path);
      await store.close();
      await withConnection(path, async (db) => {
        const spec = { ...old.spec, limits: { memoryBytes: 256 * 1024 * 1024, cpuMillis: 500 } };
        await db
          .insertInto('jobs')
          .values({ ...jobToRow(old), spec: JSON.stringify(spec) })
          .execute();
      });
      const reopened = await SqliteJobStore.open(path);
      try {
        assert.deepEqual((await reopened.getJob(old.id))?.spec.limits, {
          memory: 256 * 1024 * 1024,
          cpu: 0.5,
        });
      } finally {
        await reopened.close();
      }
    }));

  it("defect 10: a database from before dedupe scopes keeps each key, now in its owner's scope", () =>
    withDatabaseFile(async (path) => {
      const old = makeJob({ owner: 'alice', spec: { dedupeKey: 'nightly' } });
      await withConnection(path, async (db) => {
        const before = Object.fromEntries(
          Object.entries(SQLITE_MIGRATIONS).filter(([name]) => name < '0003-dedupe-scope'),
        );
        const migrated = await new Migrator({
          db,
          provider: { getMigrations: async () => before },
        }).migrateToLatest();
        assert.equal(migrated.error, undefined);
        // The row as the 0.1 schema stored it: no scope column, no scope in the spec (nor the
        // result columns of 0006, nor the later stop column of 0013).
        const {
          dedupe_scope: _scope,
          result_error: _e,
          progress: _p,
          usage: _usage,
          stop_also_by: _also,
          ...row
        } = jobToRow(old);
        const { dedupeScope: _none, ...spec } = old.spec;
        await db
          .insertInto('jobs')
          .values({ ...row, spec: JSON.stringify(spec) })
          .execute();
      });
      const store = await SqliteJobStore.open(path);
      try {
        const NOW = new Date();
        const bobs = await store.admitJob(makeJob({ owner: 'bob', spec: { dedupeKey: 'nightly' } }), NOW);
        assert.ok(bobs.admitted, 'bob has a scope of his own');
        const mine = await store.admitJob(makeJob({ owner: 'alice', spec: { dedupeKey: 'nightly' } }), NOW);
        assert.ok(!mine.admitted, "alice's old key still holds in alice's scope");
        assert.equal(mine.existing.id, old.id);
        assert.deepStrictEqual(await store.getJob(old.id), old, "read back as its owner's key");
      } finally {
        await store.close();
      }
    }));

  it('migration 0014 forgets the queues left without settings or jobs, and keeps the others', () =>
    withDatabaseFile(async (path) => {
      await withConnection(path, async (db) => {
        const before = Object.fromEntries(
          Object.entries(SQLITE_MIGRATIONS).filter(([name]) => name < '0014'),
        );
        const migrated = await new Migrator({
          db,
          provider: { getMigrations: async () => before },
        }).migrateToLatest();
        assert.equal(migrated.error, undefined);
        // As an older server left them: a row for every queue a job ever named.
        for (const name of ['used-once', 'with-job', 'limited', 'isolated']) {
          await db.insertInto('queues').values({ name, paused: 0 }).execute();
        }
        await db.updateTable('queues').set({ concurrency: 2 }).where('name', '=', 'limited').execute();
        await db
          .updateTable('queues')
          .set({ isolation: '{"pid":true}' })
          .where('name', '=', 'isolated')
          .execute();
        await db
          .insertInto('jobs')
          .values(jobToRow(makeJob({ status: 'succeeded', spec: { queue: 'with-job' } })))
          .execute();
      });
      const store = await SqliteJobStore.open(path);
      try {
        assert.deepEqual(
          (await store.listQueues()).map((q) => q.name),
          ['default', 'isolated', 'limited', 'with-job'],
        );
      } finally {
        await store.close();
      }
    }));

  it('opens connections in WAL mode, synchronous=NORMAL, with a busy timeout and foreign keys', () =>
    withDatabaseFile(async (path) => {
      await (await SqliteJobStore.open(path)).close();
      // WAL is a property of the file: any connection sees it.
      const raw = new DatabaseSync(path);
      try {
        assert.equal(raw.prepare('pragma journal_mode').get()?.journal_mode, 'wal');
      } finally {
        raw.close();
      }
      // The others are per connection: check the ones the store's own factory opens.
      await withConnection(path, async (db) => {
        const pragma = async (name: string) =>
          Object.values((await sql.raw(`pragma ${name}`).execute(db)).rows[0] as object)[0];
        assert.equal(await pragma('journal_mode'), 'wal');
        assert.equal(await pragma('synchronous'), 1); // NORMAL
        assert.equal(await pragma('busy_timeout'), SQLITE_BUSY_TIMEOUT_MS);
        assert.equal(await pragma('foreign_keys'), 1);
        assert.equal(await pragma('wal_autocheckpoint'), WAL_CHECKPOINT_PAGES);
      });
    }));

  it(`copies the WAL into the database only once it passes ${WAL_CHECKPOINT_PAGES} pages, inside the commit that does`, () =>
    withDatabaseFile(async (path) => {
      await withConnection(path, async (db) => {
        const pageSize = Number(
          Object.values((await sql`pragma page_size`.execute(db)).rows[0] as object)[0],
        );
        await sql`create table filler (page blob not null)`.execute(db);
        // The database file grows only when a checkpoint copies pages into it; until then they
        // are in the WAL.
        const dbBytes = () => statSync(path).size;
        const before = dbBytes();
        let committed = 0;
        const commitPages = async (pages: number) => {
          await db.transaction().execute(async (trx) => {
            for (let i = 0; i < pages; i++) {
              await sql`insert into filler (page) values (randomblob(${pageSize - 200}))`.execute(trx);
            }
          });
          committed += pages;
        };
        // Past the default threshold (1,000 pages) and well short of ours: still all in the WAL.
        while (committed < WAL_CHECKPOINT_PAGES / 2) await commitPages(500);
        assert.equal(dbBytes(), before, `a checkpoint by ${committed} pages`);
        // Past ours: the commit that took the WAL past it copied the WAL into the database, and
        // none before it did. The WAL file is reused from its start after a checkpoint, so its
        // size counts the frames (a 32-byte header, then a 24-byte header and a page each) that
        // the last commit before a checkpoint left there.
        const walFrames = () => (statSync(`${path}-wal`).size - 32) / (pageSize + 24);
        let framesBefore = walFrames();
        while (dbBytes() === before && committed < WAL_CHECKPOINT_PAGES + 1000) {
          framesBefore = walFrames();
          await commitPages(500);
        }
        assert.ok(framesBefore < WAL_CHECKPOINT_PAGES, `no checkpoint until ${framesBefore} frames`);
        assert.ok(walFrames() >= WAL_CHECKPOINT_PAGES, `a checkpoint at ${walFrames()} frames`);
        assert.ok(dbBytes() >= (WAL_CHECKPOINT_PAGES - 600) * pageSize, 'the pages are in the database');
      });
    }));

  it('moves the WAL into the database when the server is quiet (releaseMemory), not before', () =>
    withDatabaseFile(async (path) => {
      const store = await SqliteJobStore.open(path);
      try {
        await store.releaseMemory(); // the migrations' pages
        const before = statSync(path).size;
        for (let i = 0; i < 300; i++) await store.insertJob(makeRichJob());
        assert.equal(statSync(path).size, before, 'the jobs are in the WAL only');
        await store.releaseMemory();
        assert.ok(statSync(path).size > before, 'the jobs are in the database file');
        assert.equal((await store.listJobs({ limit: 500 })).jobs.length, 300);
      } finally {
        await store.close();
      }
    }));

  it('writes a job and its labels in one transaction: a failing label leaves no job', () =>
    withDatabaseFile(async (path) => {
      const store = await SqliteJobStore.open(path);
      try {
        const broken = makeJob({ spec: { labels: { ok: 'yes', bad: null as unknown as string } } });
        await assert.rejects(store.insertJob(broken));
        assert.equal(await store.getJob(broken.id), undefined);
        const job = makeJob({ owner: 'carol', spec: { labels: { team: 'data', tier: '1' } } });
        await store.insertJob(job);
        assert.deepStrictEqual(await store.getJob(job.id), job);
      } finally {
        await store.close();
      }
      await withConnection(path, async (db) => {
        const labels = await db.selectFrom('job_labels').selectAll().orderBy('key').execute();
        assert.equal(labels.length, 2);
        assert.deepStrictEqual(
          labels.map((l) => [l.key, l.value, l.owner]),
          [
            ['team', 'data', 'carol'],
            ['tier', '1', 'carol'],
          ],
        );
        // Retention deletes jobs; their labels must go with them.
        await db.deleteFrom('jobs').execute();
        assert.equal((await db.selectFrom('job_labels').selectAll().execute()).length, 0);
      });
    }));
});

describe('SqliteJobStore: starts and ends of one turn', () => {
  const identity = { pid: 4242, startTicks: 7, bootId: 'boot', cgroups: [] };
  const finish = (status: 'succeeded' | 'failed') => ({
    status,
    exit: {
      exitCode: status === 'succeeded' ? 0 : 1,
      signal: null,
      reason: `exited with code ${status === 'succeeded' ? 0 : 1}`,
    },
    finishedAt: new Date(Date.UTC(2025, 0, 2, 3, 5)),
    outputBytes: { stdout: 3, stderr: 0 },
  });

  it('are committed together, and each caller gets its own outcome or its own error', async () => {
    await withDatabaseFile(async (path) => {
      const store = await SqliteJobStore.open(path);
      // Each commit appends the pages it changed to the WAL: its growth counts commits.
      const walBytes = () => statSync(`${path}-wal`).size;
      try {
        const lone = makeJob();
        const queued = [makeJob(), makeJob(), makeJob()];
        const running = makeJob({ status: 'running' });
        const done = makeJob({ status: 'succeeded' });
        for (const job of [lone, ...queued, running, done]) await store.insertJob(job);
        const at = new Date(Date.UTC(2025, 0, 2, 3, 4, 30));
        let before = walBytes();
        await store.markStarted(lone.id, identity, at);
        const oneCommit = walBytes() - before;
        before = walBytes();
        const outcomes = await Promise.allSettled([
          ...queued.map((job) => store.markStarted(job.id, identity, at)),
          store.markFinished(running.id, finish('failed')),
          store.markStarted(done.id, identity, at), // illegal: it has ended
          store.markFinished(newJobId(), finish('succeeded')), // no such job
        ]);
        assert.deepEqual(
          outcomes.map((o) => (o.status === 'fulfilled' ? o.value.status : (o.reason as Error).name)),
          ['running', 'running', 'running', 'failed', 'IllegalTransitionError', 'NotFoundError'],
        );
        // Four changed rows on the same pages as the lone start: one commit's worth, not four.
        assert.ok(
          walBytes() - before < 2 * oneCommit,
          `${walBytes() - before} WAL bytes for one batch, ${oneCommit} for one start`,
        );
        const started = await store.getJob(queued[0]!.id);
        assert.deepEqual([started?.status, started?.process?.pid, started?.startedAt], ['running', 4242, at]);
        assert.equal((await store.getJob(done.id))?.status, 'succeeded');
      } finally {
        await store.close();
      }
    });
  });

  it('admissions of one turn: one that fails after writing is undone alone, the others are admitted', () =>
    withDatabaseFile(async (path) => {
      const store = await SqliteJobStore.open(path);
      try {
        const now = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
        const good = [makeJob({ createdAt: now }), makeJob({ createdAt: now })];
        // Its row is written, then its NOT NULL label fails: the savepoint takes the row back.
        const broken = makeJob({
          createdAt: now,
          spec: { labels: { ok: 'yes', bad: null as unknown as string } },
        });
        const outcomes = await Promise.allSettled([
          store.admitJob(good[0]!, now),
          store.admitJob(broken, now),
          store.admitJob(good[1]!, now),
        ]);
        assert.deepEqual(
          outcomes.map((o) => o.status),
          ['fulfilled', 'rejected', 'fulfilled'],
        );
        assert.equal(await store.getJob(broken.id), undefined);
        for (const job of good) assert.equal((await store.getJob(job.id))?.status, 'queued');
      } finally {
        await store.close();
      }
      await withConnection(path, async (db) => {
        const labels = await db.selectFrom('job_labels').selectAll().execute();
        assert.deepEqual(labels, [], 'nothing of the broken job is left');
      });
    }));

  it('a job with no dependents settles with no write at all', async () => {
    await withDatabaseFile(async (path) => {
      const store = await SqliteJobStore.open(path);
      try {
        const job = makeJob({ status: 'succeeded' });
        await store.insertJob(job);
        const before = statSync(`${path}-wal`).size;
        assert.deepEqual(await store.settleDependents(job.id, new Date()), []);
        assert.equal(statSync(`${path}-wal`).size, before);
      } finally {
        await store.close();
      }
    });
  });
});

/**
 * What `run` resolves with, and how many SQLite statements (node:sqlite's `run`, `all`, `get`,
 * `iterate`) ran meanwhile, in any connection of this process.
 */
async function statementsDuring<T>(run: () => Promise<T>): Promise<{ result: T; statements: number }> {
  const proto = StatementSync.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const names = ['run', 'all', 'get', 'iterate'] as const;
  const originals = names.map((name) => proto[name]!);
  let statements = 0;
  names.forEach((name, i) => {
    proto[name] = function (this: unknown, ...args: unknown[]) {
      statements++;
      return originals[i]!.apply(this, args);
    };
  });
  try {
    const result = await run();
    return { result, statements };
  } finally {
    names.forEach((name, i) => {
      proto[name] = originals[i]!;
    });
  }
}
