import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import type { Job } from '../../src/core/job.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import { openSqliteConnection } from '../../src/store/sqlite/open-sqlite-connection.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { countBoundQuery, deleteBatchQuery } from '../../src/store/sqlite/sqlite-retention.ts';
import { makeJob } from './make-job.ts';

const ROWS = 200_000;
const KEEP = 100_000;
const T0 = Date.UTC(2026, 0, 1);

/**
 * `count` finished jobs cloned in SQL from one stored template (as bench/lib/history-fill.ts
 * does), finishing 1 ms apart from T0 on, with UUIDv7 ids from the same milliseconds.
 */
function fillFinished(path: string, template: Job, count: number): void {
  const db = new DatabaseSync(path);
  try {
    db.exec('pragma synchronous = off');
    const columns = (db.prepare('pragma table_info(jobs)').all() as { name: string }[]).map((c) => c.name);
    const select = columns.map((c) => {
      if (c === 'id') return ID_SQL;
      if (c === 'created_at' || c === 'started_at') return 'ms - 10';
      if (c === 'finished_at') return 'ms';
      return c;
    });
    db.exec('begin');
    db.prepare(
      `insert into jobs (${columns.join(', ')})
       with recursive seq(i) as (select 0 union all select i + 1 from seq where i + 1 < :count),
         rows as (select :t0 + i as ms from seq)
       select ${select.join(', ')} from rows cross join (select * from jobs where id = :template)`,
    ).run({ count, t0: T0, template: template.id });
    db.exec('commit');
  } finally {
    db.close();
  }
}

/** A UUIDv7 of millisecond `ms`, random below it: unique because `ms` is. */
const ID_SQL = `substr(printf('%012x', ms), 1, 8) || '-' || substr(printf('%012x', ms), 9, 4) || '-7000-'
  || printf('%04x', 32768 + abs(random()) % 16384) || '-' || printf('%012x', abs(random()) % 281474976710656)`;

async function queryPlan(db: Kysely<StoreSchema>, query: CompiledQuery): Promise<string[]> {
  const { rows } = await db.executeQuery<{ detail: string }>(
    CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
  );
  return rows.map((r) => r.detail);
}

/** Every table access is through an index (no `SCAN <table>` of rows), nothing is sorted. */
function assertIndexed(plan: string[], what: string): void {
  const text = plan.join('\n');
  assert.doesNotMatch(text, /TEMP B-TREE/, `${what} sorts:\n${text}`);
  for (const line of plan.filter((l) => /^(SCAN|SEARCH) /.test(l))) {
    assert.match(line, / USING (COVERING )?INDEX | USING PRIMARY KEY /, `${what} reads a table:\n${text}`);
  }
}

describe('SQLite retention at 200,000 finished jobs', () => {
  it('deletes beyond the count limit in indexed batches of 1,000, keeping active and waited-for jobs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobworker-retention-'));
    const path = join(dir, 'jobs.db');
    try {
      let store = await SqliteJobStore.open(path);
      const template = makeJob({ status: 'succeeded', spec: { labels: { team: 'data' } } });
      await store.insertJob(template);
      await store.close();
      fillFinished(path, template, ROWS);
      store = await SqliteJobStore.open(path);
      await store.deleteJob(template.id);
      await store.forgetDirsRemoved([template.id]);

      // Jobs that must survive however old: active ones, and a finished one a queued job waits for.
      const old = new Date(T0 - 1000);
      const active = [];
      for (const status of ['queued', 'running', 'paused'] as const) {
        const job = makeJob({ status, createdAt: old });
        await store.insertJob(job);
        active.push(job);
      }
      const dependency = makeJob({ status: 'succeeded', createdAt: old, finishedAt: old });
      await store.insertJob(dependency);
      const blocker = makeJob({ status: 'running' });
      await store.insertJob(blocker);
      const admitted = await store.admitJob(
        makeJob({ createdAt: old, spec: { after: [dependency.id, blocker.id] } }),
        old,
      );
      assert.ok(admitted.admitted);

      const db = openSqliteConnection(path);
      try {
        const bound = await store.retentionBound({ finishedBefore: null, keepNewest: KEEP });
        assert.ok(bound);
        for (const owner of [undefined, 'alice']) {
          const batch = deleteBatchQuery({ before: bound, limit: 1000, ...(owner ? { owner } : {}) });
          const plan = await queryPlan(db, batch.compile(db));
          const index = owner ? 'jobs_finished_by_owner' : 'jobs_finished';
          assert.ok(
            plan.some((l) => l.startsWith('SEARCH j USING COVERING INDEX ') && l.includes(` ${index} (`)),
            `a range of ${index}:\n${plan.join('\n')}`,
          );
          assertIndexed(plan, `the delete batch${owner ? ' of one owner' : ''}`);
        }
        const boundPlan = await queryPlan(db, countBoundQuery(KEEP).compile(db));
        assert.equal(boundPlan.length, 1, boundPlan.join('\n'));
        assert.match(
          boundPlan[0]!,
          /^(SCAN|SEARCH) jobs USING COVERING INDEX jobs_finished\b/,
          'the count bound walks the covering index only, newest first: no table row, no sort',
        );

        let deleted = 0;
        let batches = 0;
        for (;;) {
          const ids = await store.deleteFinished({ before: bound, limit: 1000 });
          deleted += ids.length;
          batches++;
          assert.ok(ids.length <= 1000);
          if (ids.length < 1000) break;
        }
        assert.equal(deleted, ROWS - KEEP, 'everything beyond the newest 100,000 finished jobs');
        assert.equal(batches, (ROWS - KEEP) / 1000 + 1);
        const { rows } = await sql<{
          n: number;
        }>`select count(*) as n from jobs where finished_at is not null`.execute(db);
        assert.equal(rows[0]!.n, KEEP + 1, 'the newest 100,000, and the dependency a queued job waits for');
        for (const job of [...active, dependency, blocker]) assert.ok(await store.getJob(job.id), job.status);
        assert.equal(
          (await store.listDirsToRemove(ROWS)).length,
          ROWS - KEEP,
          'every directory is to be removed',
        );
        const oldest = await sql<{
          at: number;
        }>`select min(finished_at) as at from jobs indexed by jobs_finished
          where finished_at >= ${T0}`.execute(db);
        assert.equal(oldest.rows[0]!.at, T0 + ROWS - KEEP, 'exactly the oldest went');
      } finally {
        await db.destroy();
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
