import { sql } from 'kysely';
import pg from 'pg';
import { newJobId } from '../../src/core/ids.ts';
import type { JobStatus } from '../../src/core/job.ts';
import { jobToRow } from '../../src/store/job-row.ts';
import { openPostgres } from '../../src/store/postgres/open-postgres.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { createTestDatabase } from '../../test/helpers/postgres.ts';
import { makeJob } from '../../test/store/make-job.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { summarize } from '../lib/stats.ts';

const NAME = 'history-postgres';
const PAGE = 50;
const WARMUP = 200;
const ITERATIONS = 2000;
/** Rows per insert statement while filling (about 30 parameters a row, under PostgreSQL's 65,535). */
const FILL_BATCH = 1000;

/**
 * The history scenario on PostgreSQL (issue 15): 1,000,000 finished jobs (5% failed) in a fresh
 * database, then p50/p99 of `PgJobStore` reads against the same SQL through a bare `pg` client:
 * the newest page, the newest failed jobs, a page 90% deep by cursor, and a get by id.
 */
export const historyPostgres: Scenario = {
  name: NAME,
  summary: '1,000,000 finished jobs in PostgreSQL: p50/p99 of listJobs pages and getJob vs bare SQL',
  async run(options, emit) {
    const count = options.full ? 5_000_000 : 1_000_000;
    const database = await createTestDatabase('bench_history');
    const store = await PgJobStore.open(database.url);
    const db = openPostgres(database.url);
    const bare = new pg.Client({ connectionString: database.url });
    await bare.connect();
    try {
      const t0 = performance.now();
      const ids: string[] = [];
      for (let done = 0; done < count; ) {
        const rows = [];
        for (let i = 0; i < FILL_BATCH && done < count; i++, done++) {
          const status: JobStatus = done % 20 === 0 ? 'failed' : 'succeeded';
          const id = newJobId();
          if (done % 1000 === 0) ids.push(id);
          rows.push(jobToRow(makeJob({ id, status, owner: `user${done % 10}` })));
        }
        await db.insertInto('jobs').values(rows).execute();
      }
      await sql`analyze`.execute(db);
      const seconds = (performance.now() - t0) / 1000;
      emit(
        row({
          scenario: NAME,
          metric: `history filled: ${fmt.count(count)} rows`,
          value: count / seconds,
          format: fmt.rate('rows/s'),
        }),
      );
      const deep = await bare.query<{ id: string }>(
        'select id from jobs order by id desc limit 1 offset $1',
        [Math.floor(count * 0.9)],
      );
      const cursor = deep.rows[0]!.id;
      let next = 0;
      const someId = () => ids[next++ % ids.length]!;
      const cases = [
        {
          metric: `newest ${PAGE}`,
          store: () => store.listJobs({ limit: PAGE }),
          bare: () => bare.query(`select * from jobs order by id desc limit ${PAGE + 1}`),
        },
        {
          metric: `newest ${PAGE} with status=failed (5% of rows)`,
          store: () => store.listJobs({ limit: PAGE, status: ['failed'] }),
          bare: () =>
            bare.query(`select * from jobs where status = $1 order by id desc limit ${PAGE + 1}`, ['failed']),
        },
        {
          metric: `a page ${fmt.count(count * 0.9)} jobs deep (by cursor)`,
          store: () => store.listJobs({ limit: PAGE, cursor }),
          bare: () =>
            bare.query(`select * from jobs where id < $1 order by id desc limit ${PAGE + 1}`, [cursor]),
        },
        {
          metric: 'get by id',
          store: () => store.getJob(someId()),
          bare: () => bare.query('select * from jobs where id = $1', [someId()]),
        },
      ];
      for (const c of cases) {
        const jw = summarize(await time(c.store));
        const base = summarize(await time(c.bare));
        emit(
          row({
            scenario: NAME,
            metric: `${c.metric} p50`,
            value: jw.p50,
            format: fmt.ms,
            baseline: { name: 'bare SQL', value: base.p50 },
          }),
        );
        emit(
          row({
            scenario: NAME,
            metric: `${c.metric} p99`,
            value: jw.p99,
            format: fmt.ms,
            baseline: { name: 'bare SQL', value: base.p99 },
            budget: { text: 'p99 < 5 ms', pass: jw.p99 < 5 },
          }),
        );
      }
    } finally {
      await bare.end();
      await db.destroy();
      await store.close();
      await database.drop();
    }
  },
};

async function time(task: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const t0 = performance.now();
    await task();
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return times;
}
