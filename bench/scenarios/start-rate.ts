import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countJobs, startJob, waitNoneQueued, waitNoneRunning } from '../lib/jobs.ts';
import { hasCommand, runCommand, runNodeScript } from '../lib/node-script.ts';
import { runPool, sleep } from '../lib/pool.ts';
import { fmt, row, skipped } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { summarize } from '../lib/stats.ts';

const NAME = 'start-rate';
const CONCURRENCY = 16;
const SPAWN_LOOP = new URL('../baselines/spawn-loop.ts', import.meta.url).pathname;

interface SpawnLoopResult {
  readonly seconds: number;
  readonly latenciesMs: number[];
  readonly rssBytes: number;
}

export const startRate: Scenario = {
  name: NAME,
  summary: '2,000 /bin/true jobs (--full: 10,000), 16 in flight: jobs/s vs a bare spawn loop and tsp',
  async run(options, emit) {
    const count = options.full ? 10_000 : 2_000;
    const jw = await measureJobworker(count, options.logLevel);
    const bare = await runNodeScript<SpawnLoopResult>(SPAWN_LOOP, [String(count), String(CONCURRENCY)]);
    const bareRate = count / bare.seconds;
    // The same loop grown to the server's size: Node forks, so a big parent spawns slowly.
    const heavy = await runNodeScript<SpawnLoopResult>(SPAWN_LOOP, [
      String(count),
      String(CONCURRENCY),
      String(Math.round(jw.serverRss / 1e6)),
    ]);
    const tspRate = (await hasCommand('tsp')) ? count / (await measureTsp(count)) : undefined;

    const startRateValue = count / jw.startSeconds;
    emit(
      row({
        scenario: NAME,
        metric: `start rate, ${count} jobs (to the last recorded start)`,
        value: startRateValue,
        format: fmt.rate('jobs/s'),
        baseline: { name: 'bare spawn', value: bareRate },
        budget: { text: '>= 0.50x bare spawn', pass: startRateValue >= 0.5 * bareRate },
      }),
    );
    if (tspRate === undefined) {
      emit(skipped(NAME, 'start rate vs tsp', 'tsp not installed (apt-get install task-spooler)'));
    } else {
      emit(
        row({
          scenario: NAME,
          metric: `start rate, ${count} jobs, vs tsp (to all run)`,
          value: startRateValue,
          format: fmt.rate('jobs/s'),
          baseline: { name: 'tsp -S 16', value: tspRate },
          budget: { text: '> 1.00x tsp', pass: startRateValue > tspRate },
        }),
      );
    }
    const finishRate = count / jw.finishSeconds;
    emit(
      row({
        scenario: NAME,
        metric: 'completion rate (to every job recorded finished)',
        value: finishRate,
        format: fmt.rate('jobs/s'),
        baseline: { name: 'bare spawn', value: bareRate },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `start rate vs bare spawn from a process of the server's RSS (${fmt.mb(heavy.rssBytes)})`,
        value: startRateValue,
        format: fmt.rate('jobs/s'),
        baseline: { name: 'bare spawn, grown', value: count / heavy.seconds },
      }),
    );
    const latency = summarize(jw.latenciesMs);
    const bareLatency = summarize(bare.latenciesMs);
    emit(
      row({
        scenario: NAME,
        metric: 'p50 request -> admitted (201)',
        value: latency.p50,
        format: fmt.ms,
        baseline: { name: 'bare spawn() -> spawn event', value: bareLatency.p50 },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'p99 request -> admitted (201)',
        value: latency.p99,
        format: fmt.ms,
        baseline: { name: 'bare spawn() -> spawn event', value: bareLatency.p99 },
      }),
    );
  },
};

async function measureJobworker(count: number, logLevel: string) {
  const server = await ServerHandle.start({ logLevel, maxSockets: CONCURRENCY });
  try {
    const spec = { command: '/bin/true' };
    await runPool(100, CONCURRENCY, async () => void (await startJob(server.api, spec))); // warm-up
    await waitNoneRunning(server.api);
    const latenciesMs: number[] = [];
    const started = performance.now();
    await runPool(count, CONCURRENCY, async () => {
      const t0 = performance.now();
      await startJob(server.api, spec);
      latenciesMs.push(performance.now() - t0);
    });
    // The 201 comes once a job is admitted; the start rate counts to the last start.
    await waitNoneQueued(server.api, 5, 600_000);
    const startSeconds = (performance.now() - started) / 1000;
    const serverRss = server.rss();
    await waitNoneRunning(server.api, 5);
    const finishSeconds = (performance.now() - started) / 1000;
    const bad = await countJobs(server.api, 'failed,lost,stopped,timed_out,cancelled');
    if (bad > 0) throw new Error(`${bad} of the /bin/true jobs did not succeed`);
    return { startSeconds, finishSeconds, latenciesMs, serverRss };
  } finally {
    await server.close();
  }
}

/** Seconds for tsp (task-spooler, 16 slots) to take and run `count` /bin/true, each through its client. */
async function measureTsp(count: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-bench-tsp-'));
  // Its own server (socket) and output files in the temp directory; keep every finished job listed.
  const env = {
    ...process.env,
    TS_SOCKET: join(dir, 'socket'),
    TMPDIR: dir,
    TS_MAXFINISHED: String(count * 2),
  };
  try {
    await runCommand('tsp', ['-S', String(CONCURRENCY)], env);
    const started = performance.now();
    await runPool(count, CONCURRENCY, async () => void (await runCommand('tsp', ['/bin/true'], env)));
    for (;;) {
      const list = await runCommand('tsp', ['-l'], env);
      const finished = list.split('\n').filter((line) => / finished /.test(line)).length;
      if (finished >= count) break;
      await sleep(10);
    }
    return (performance.now() - started) / 1000;
  } finally {
    await runCommand('tsp', ['-K'], env).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
