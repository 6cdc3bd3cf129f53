import { availableParallelism } from 'node:os';
import { RELIEF_QUIET_MS } from '../../src/memory/memory-relief.ts';
import { countJobs, getJob, startJob, waitNoneRunning } from '../lib/jobs.ts';
import { sleep } from '../lib/pool.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { summarize } from '../lib/stats.ts';
import { stopAllJobs } from '../lib/stop-all-jobs.ts';

const NAME = 'busy-jobs';
/** Busy jobs per core: more of them than cores, as a `make -j` or a batch of encoders would be. */
const BUSY_PER_CORE = 4;
/** GETs on each side (--full: 2,000), 5 ms apart: a user's pace, not a load. */
const GETS = 400;
const FULL_GETS = 2000;
const GET_PAUSE_MS = 5;
/** `/bin/true` jobs run through `POST /run` on each side (--full: 100), 100 ms apart. */
const RUNS = 30;
const FULL_RUNS = 100;
const RUN_PAUSE_MS = 100;

/**
 * How the server answers while jobs keep every core busy, against the same with nothing running:
 * one client's `GET /v1/jobs/{id}` one at a time (how long an answer waits for the server's turn
 * at a core), and `POST /run` of `/bin/true` (a start and an end: the spawner's turn too, and the
 * job's own among the busy ones). The jobs, their wrappers and the spawner share the CPU with the
 * server's threads as one group (docs/isolation.md, "The server and its jobs share the CPU as
 * two"). No budget: the slowest answers are what a user feels, and this host's scheduler decides
 * those.
 */
export const busyJobs: Scenario = {
  name: NAME,
  summary: `GET /v1/jobs/{id} one at a time and POST /run of /bin/true, idle and then while ${BUSY_PER_CORE} busy-loop jobs per core run`,
  async run(options, emit) {
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const busy = BUSY_PER_CORE * availableParallelism();
    const gets = options.full ? FULL_GETS : GETS;
    const runs = options.full ? FULL_RUNS : RUNS;
    const idle = { get: [] as number[], run: [] as number[] };
    const loaded = { get: [] as number[], run: [] as number[] };
    try {
      const job = await startJob(server.api, { command: '/bin/true' });
      await waitNoneRunning(server.api);
      // Warm-up: the routes' code optimized before either side counts; then the memory relief
      // that the jobs' ends set off (a collection, 2 s into a quiet spell) is let run first.
      await repeat(200, 0, () => getJob(server.api, job.id));
      await repeat(5, 0, () => runTrue(server));
      await sleep(RELIEF_QUIET_MS + 1000);
      idle.get = await repeat(gets, GET_PAUSE_MS, () => getJob(server.api, job.id));
      idle.run = await repeat(runs, RUN_PAUSE_MS, () => runTrue(server));
      for (let i = 0; i < busy; i++)
        await startJob(server.api, { command: 'while :; do :; done', shell: true });
      const deadline = performance.now() + 60_000;
      while ((await countJobs(server.api, 'running')) < busy) {
        if (performance.now() > deadline)
          throw new Error(`${busy} busy jobs were not all running after 60 s`);
        await sleep(20);
      }
      loaded.get = await repeat(gets, GET_PAUSE_MS, () => getJob(server.api, job.id));
      loaded.run = await repeat(runs, RUN_PAUSE_MS, () => runTrue(server));
    } finally {
      // Busy loops left behind would slow every scenario after this one.
      try {
        await stopAllJobs(server.api);
      } finally {
        await server.close();
      }
    }
    const what = {
      get: `GET /v1/jobs/{id} while ${busy} busy-loop jobs run (${BUSY_PER_CORE} per core), one at a time, ${GET_PAUSE_MS} ms apart`,
      run: `POST /run of /bin/true while ${busy} busy-loop jobs run, request -> ended, ${RUN_PAUSE_MS} ms apart`,
    };
    for (const kind of ['get', 'run'] as const) {
      const [busySide, idleSide] = [summarize(loaded[kind]), summarize(idle[kind])];
      // Of 30 runs (100 with --full) the p99 is the slowest or next to it: the max stands for it.
      for (const name of kind === 'get' ? (['p50', 'p99', 'max'] as const) : (['p50', 'max'] as const)) {
        emit(
          row({
            scenario: NAME,
            metric: `${what[kind]}, ${name} of ${fmt.count(busySide.n)}`,
            value: busySide[name],
            format: fmt.ms,
            baseline: { name: 'the same, nothing running', value: idleSide[name] },
          }),
        );
      }
    }
  },
};

/** `count` calls of `call` one after another, `pauseMs` apart: each one's milliseconds. */
async function repeat(count: number, pauseMs: number, call: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await call();
    out.push(performance.now() - started);
    if (pauseMs > 0) await sleep(pauseMs);
  }
  return out;
}

/** `POST /run` of `/bin/true`, which answers once the job has ended; throws unless it succeeded. */
async function runTrue(server: ServerHandle): Promise<void> {
  const res = await server.api.open('POST', '/run', { body: { command: '/bin/true' } });
  res.resume();
  if (res.statusCode !== 200 || res.headers['x-jobworker-status'] !== 'succeeded') {
    throw new Error(
      `POST /run answered ${res.statusCode} with status ${String(res.headers['x-jobworker-status'])}`,
    );
  }
}
