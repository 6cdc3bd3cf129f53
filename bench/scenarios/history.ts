import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { fillHistory } from '../lib/history-fill.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { removeAfterRun } from '../lib/scratch-dirs.ts';
import { summarize } from '../lib/stats.ts';

const NAME = 'history';
const PAGE = 50;
const WARMUP = 200;
const ITERATIONS = 2000;

export const history: Scenario = {
  name: NAME,
  summary: '1,000,000 finished jobs in SQLite: p50/p99 of listJobs pages vs the bare SQL',
  async run(options, emit) {
    const count = options.full ? 5_000_000 : 1_000_000;
    const { dataDir, seconds } = await fillHistory(count, options.logLevel);
    const path = join(dataDir, 'jobworker.db');
    const store = await SqliteJobStore.open(path);
    const raw = new DatabaseSync(path, { readOnly: true });
    try {
      emit(
        row({
          scenario: NAME,
          metric: `history filled: ${fmt.count(count)} rows`,
          value: count / seconds,
          format: fmt.rate('rows/s'),
        }),
      );
      const deep = raw
        .prepare('select id from jobs order by id desc limit 1 offset ?')
        .get(Math.floor(count * 0.9));
      const cursor = String((deep as { id: string }).id);
      const cases = [
        {
          metric: `newest ${PAGE}`,
          store: () => store.listJobs({ limit: PAGE }),
          sql: raw.prepare(`select * from jobs order by id desc limit ${PAGE + 1}`),
          params: [],
        },
        {
          metric: `newest ${PAGE} with status=failed (5% of rows)`,
          store: () => store.listJobs({ limit: PAGE, status: ['failed'] }),
          sql: raw.prepare(`select * from jobs where status = ? order by id desc limit ${PAGE + 1}`),
          params: ['failed'],
        },
        {
          metric: `a page ${fmt.count(count * 0.9)} jobs deep (by cursor)`,
          store: () => store.listJobs({ limit: PAGE, cursor }),
          sql: raw.prepare(`select * from jobs where id < ? order by id desc limit ${PAGE + 1}`),
          params: [cursor],
        },
      ];
      for (const c of cases) {
        const page = await c.store();
        if (page.jobs.length !== PAGE || page.nextCursor === null) {
          throw new Error(`${c.metric}: expected a full page with a next cursor`);
        }
        const jw = summarize(await timeAsync(c.store));
        const bare = summarize(timeSync(c.sql, c.params));
        emit(
          row({
            scenario: NAME,
            metric: `${c.metric} p50`,
            value: jw.p50,
            format: fmt.ms,
            baseline: { name: 'bare SQL', value: bare.p50 },
          }),
        );
        emit(
          row({
            scenario: NAME,
            metric: `${c.metric} p99`,
            value: jw.p99,
            format: fmt.ms,
            baseline: { name: 'bare SQL', value: bare.p99 },
            budget: { text: 'p99 < 2 ms', pass: jw.p99 < 2 },
          }),
        );
      }
    } finally {
      raw.close();
      await store.close();
      removeAfterRun(dataDir);
    }
  },
};

async function timeAsync(task: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const t0 = performance.now();
    await task();
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return times;
}

/** The same query through a bare prepared statement: rows as objects, no mapping to jobs. */
function timeSync(statement: StatementSync, params: string[]): number[] {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const t0 = performance.now();
    statement.all(...params);
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return times;
}
