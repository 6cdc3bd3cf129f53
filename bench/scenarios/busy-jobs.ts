import { availableParallelism } from 'node:os';
import type { ApiClient } from '../lib/api-client.ts';
import { countJobs, getJob, startJob, waitNoneRunning } from '../lib/jobs.ts';
import { sleep } from '../lib/pool.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { type Summary, summarize } from '../lib/stats.ts';
import { stopAllJobs } from '../lib/stop-all-jobs.ts';

const NAME = 'busy-jobs';
/** Busy jobs per core: more of them than cores, as a `make -j` or a batch of encoders would be. */
const BUSY_PER_CORE = 4;
/** Requests on each side (--full: 2,000). */
const REQUESTS = 400;
const FULL_REQUESTS = 2000;
/** A user's pace, not a load: the figure is how long one answer waits for the server's turn. */
const PAUSE_MS = 5;

/**
 * How the API answers while jobs keep every core busy: one client's `GET /v1/jobs/{id}` one at a
 * time, first with nothing running (the baseline), then with 4 busy loops per core running as
 * jobs. The jobs, their wrappers and the spawner share the CPU with the server's threads as one
 * group (docs/isolation.md, "The server and its jobs share the CPU as two"); without that, the
 * server's event loop waited for a core behind every busy job, and the slowest answers took up to
 * 200 ms on a 2-core host. No budget: what a user feels is the slowest answers, and this host's
 * scheduler decides those.
 */
export const busyJobs: Scenario = {
  name: NAME,
  summary: `GET /v1/jobs/{id}, ${REQUESTS} one at a time (--full: ${fmt.count(FULL_REQUESTS)}), idle and then while ${BUSY_PER_CORE} busy-loop jobs per core run`,
  async run(options, emit) {
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const busy = BUSY_PER_CORE * availableParallelism();
    const requests = options.full ? FULL_REQUESTS : REQUESTS;
    let idle: Summary;
    let loaded: Summary;
    try {
      const job = await startJob(server.api, { command: '/bin/true' });
      await waitNoneRunning(server.api);
      // Warm-up: the route's code optimized before either side counts.
      await latencies(server.api, job.id, 200);
      idle = summarize(await latencies(server.api, job.id, requests));
      for (let i = 0; i < busy; i++)
        await startJob(server.api, { command: 'while :; do :; done', shell: true });
      while ((await countJobs(server.api, 'running')) < busy) await sleep(20);
      loaded = summarize(await latencies(server.api, job.id, requests));
    } finally {
      // Busy loops left behind would slow every scenario after this one.
      try {
        await stopAllJobs(server.api);
      } finally {
        await server.close();
      }
    }
    for (const [name, pick] of [
      ['p50', (s: Summary) => s.p50],
      ['p99', (s: Summary) => s.p99],
      ['max', (s: Summary) => s.max],
    ] as const) {
      emit(
        row({
          scenario: NAME,
          metric: `GET /v1/jobs/{id} while ${busy} busy-loop jobs run (${BUSY_PER_CORE} per core), one at a time, ${name} of ${fmt.count(requests)}`,
          value: pick(loaded),
          format: fmt.ms,
          baseline: { name: 'the same, nothing running', value: pick(idle) },
        }),
      );
    }
  },
};

/** `count` GETs of the job one after another, `PAUSE_MS` apart: each one's milliseconds. */
async function latencies(api: ApiClient, id: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await getJob(api, id);
    out.push(performance.now() - started);
    await sleep(PAUSE_MS);
  }
  return out;
}
