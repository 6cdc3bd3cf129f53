import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import { newJobId } from '../../src/core/ids.ts';
import { jobToRow } from '../../src/store/job-row.ts';
import { openPostgres } from '../../src/store/postgres/open-postgres.ts';
import { PgJobStore } from '../../src/store/postgres/pg-job-store.ts';
import { createTestDatabase } from '../../test/helpers/postgres.ts';
import { makeJob } from '../../test/store/make-job.ts';
import { startJob, waitNoneRunning } from '../lib/jobs.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { makeScratchDir, removeAfterRun } from '../lib/scratch-dirs.ts';
import { ServeProcess } from '../lib/serve-process.ts';
import { summarize } from '../lib/stats.ts';

const NAME = 'cluster';
/** Claims timed at each backlog size. */
const CLAIMS = 500;
/** "Flat": claim p99 at the big backlog within this factor of the small one. */
const FLAT = 1.5;

/**
 * Issue 15's figures. Jobs/s through 1, 2 and 3 nodes on one PostgreSQL database (separate
 * `jobworker serve` processes, jobs submitted round-robin through every node), each against one
 * node in the same run; and the claim's p99 (claim one job, give it back) with 100,000 jobs
 * waiting against the same with 1,000 waiting. On this 2-core machine the nodes share the cores
 * with PostgreSQL and the jobs themselves, so more nodes cannot mean more jobs/s: the ratio says
 * what coordinating through the store costs, not what more machines would give.
 */
export const cluster: Scenario = {
  name: NAME,
  summary: 'jobs/s through 1, 2 and 3 nodes on one PostgreSQL; claim p99 with 100,000 jobs waiting',
  async run(options, emit) {
    const jobs = options.full ? 3000 : 1000;
    const rates: number[] = [];
    for (const nodes of [1, 2, 3]) rates.push(await throughput(nodes, jobs, options.logLevel));
    for (const [i, rate] of rates.entries()) {
      emit(
        row({
          scenario: NAME,
          metric: `${jobs} \`true\` jobs through ${i + 1} node${i === 0 ? '' : 's'}`,
          value: rate,
          format: fmt.rate('jobs/s'),
          baseline: { name: '1 node', value: rates[0]! },
          // The machine does not grow with the cluster: a node more must not cost much.
          ...(i === 0
            ? {}
            : {
                budget: {
                  text: 'at least 0.7x of 1 node on the same 2 cores',
                  pass: rate >= 0.7 * rates[0]!,
                },
              }),
        }),
      );
    }
    const waiting = options.full ? 1_000_000 : 100_000;
    const { small, big } = await claimLatency(waiting);
    emit(
      row({
        scenario: NAME,
        metric: `claim p99 with ${fmt.count(waiting)} waiting`,
        value: big.p99,
        format: fmt.ms,
        baseline: { name: 'with 1,000 waiting', value: small.p99 },
        budget: { text: `within ${FLAT}x of 1,000 waiting`, pass: big.p99 <= small.p99 * FLAT },
      }),
    );
    console.log(
      `  claim p50 ${big.p50.toFixed(3)} ms with ${waiting} waiting, ${small.p50.toFixed(3)} ms with 1,000`,
    );
  },
};

/** Jobs/s of `count` jobs submitted round-robin through `nodes` nodes sharing one database. */
async function throughput(nodes: number, count: number, logLevel: string): Promise<number> {
  const database = await createTestDatabase(`bench_cluster_${nodes}`);
  const secretDir = await makeScratchDir('jw-bench-cluster-');
  removeAfterRun(secretDir);
  const secretFile = join(secretDir, 'secret');
  await writeFile(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const servers: ServeProcess[] = [];
  try {
    for (let i = 1; i <= nodes; i++) {
      servers.push(
        await ServeProcess.start({
          logLevel,
          args: ['--store', database.url, '--node-id', `bench-${i}`, '--cluster-secret-file', secretFile],
        }),
      );
    }
    const t0 = performance.now();
    const inFlight = 16;
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < count) {
          const i = next++;
          await startJob(servers[i % nodes]!.api, { command: 'true' });
        }
      }),
    );
    await Promise.all(servers.map((s) => waitNoneRunning(s.api, 20, 300_000)));
    return count / ((performance.now() - t0) / 1000);
  } finally {
    for (const server of servers.reverse()) await server.close();
    await database.drop();
  }
}

/** Claim-and-release p99 through `PgJobStore` with 1,000 and then `waiting` jobs queued. */
async function claimLatency(waiting: number) {
  const database = await createTestDatabase('bench_claims');
  const store = await PgJobStore.open(database.url);
  // The backlog goes in as rows, 1,000 per statement: admitting 100,000 one by one would time
  // the admission, not the claim. The first admission makes the queue's row.
  const db = openPostgres(database.url);
  try {
    await store.admitJob(makeJob({ spec: { queue: 'backlog' } }), new Date());
    await fill(db, 999);
    await sql`analyze jobs`.execute(db);
    const small = await timeClaims(store);
    await fill(db, waiting - 1000);
    await sql`analyze jobs`.execute(db);
    const big = await timeClaims(store);
    return { small, big };
  } finally {
    await db.destroy();
    await store.close();
    await database.drop();
  }
}

/** Inserts `count` queued jobs of the queue `backlog`, 1,000 rows per statement. */
async function fill(db: ReturnType<typeof openPostgres>, count: number): Promise<void> {
  for (let done = 0; done < count; ) {
    const rows = [];
    for (let i = 0; i < 1000 && done < count; i++, done++) {
      rows.push(
        jobToRow(makeJob({ id: newJobId(), owner: 'bench', spec: { queue: 'backlog', priority: done % 7 } })),
      );
    }
    await db.insertInto('jobs').values(rows).execute();
  }
}

async function timeClaims(store: PgJobStore) {
  const times: number[] = [];
  for (let i = 0; i < CLAIMS; i++) {
    const t0 = performance.now();
    const claimed = await store.claimReady('backlog', 'bench', 1);
    times.push(performance.now() - t0);
    for (const job of claimed) await store.releaseClaim(job.id, 'bench');
  }
  return summarize(times);
}
