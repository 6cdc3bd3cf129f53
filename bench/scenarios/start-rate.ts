import { join } from 'node:path';
import { RELIEF_QUIET_MS } from '../../src/memory/memory-relief.ts';
import { countJobs, startJob, waitNoneQueued, waitNoneRunning } from '../lib/jobs.ts';
import { hasCommand, runCommand, runNodeScript } from '../lib/node-script.ts';
import { pairedRound, pairsRatio } from '../lib/paired-rounds.ts';
import { runPool, sleep } from '../lib/pool.ts';
import { fmt, row, skipped } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { makeScratchDir, removeAfterRun } from '../lib/scratch-dirs.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { median, summarize } from '../lib/stats.ts';

const NAME = 'start-rate';
const CONCURRENCY = 16;
const SPAWN_LOOP = new URL('../baselines/spawn-loop.ts', import.meta.url).pathname;

interface SpawnLoopResult {
  readonly seconds: number;
  readonly latenciesMs: number[];
  readonly rssBytes: number;
  /** The loop's CPU and its children's, over the timed run. */
  readonly cpuSeconds: number;
}

/** Jobs already running in the second measurement (issue 9), and how many start on top of them. */
const RUNNING = 4_000;

/**
 * The start rate is judged in paired rounds: one server takes `ROUNDS` bursts of jobs, each paired
 * with a run of the bare spawn loop of the same size (the order alternating), and the ratio judged
 * is the median of the pairs' ratios, as api-get and output-capture do. One run of each side,
 * minutes apart, let the host's drift decide a budget that sits near its edge: 0.91x to 1.17x on
 * one build in one day.
 */
const ROUNDS = 5;

export const startRate: Scenario = {
  name: NAME,
  summary: `/bin/true jobs, 16 in flight, ${ROUNDS} paired rounds of 800 (--full: 2,000) against a bare spawn loop: jobs/s vs the loop and tsp; event-loop time per job; then 1,000 (--full: 4,000) more with 4,000 jobs running`,
  async run(options, emit) {
    const perRound = options.full ? 2_000 : 800;
    const count = perRound * ROUNDS;
    const bareRates: number[] = [];
    const bareLatencies: number[] = [];
    let bareCpuSeconds = 0;
    const jw = await measureJobworker(perRound, ROUNDS, options.logLevel, 0, async () => {
      const bare = await runNodeScript<SpawnLoopResult>(SPAWN_LOOP, [String(perRound), String(CONCURRENCY)]);
      bareRates.push(perRound / bare.seconds);
      bareLatencies.push(...bare.latenciesMs);
      bareCpuSeconds += bare.cpuSeconds;
    });
    const bareRate = median(bareRates);
    // The same loop grown to the server's size: Node forks, so a big parent spawns slowly.
    const heavy = await runNodeScript<SpawnLoopResult>(SPAWN_LOOP, [
      String(perRound),
      String(CONCURRENCY),
      String(Math.round(jw.serverRss / 1e6)),
    ]);
    const tspRate = (await hasCommand('tsp')) ? perRound / (await measureTsp(perRound)) : undefined;

    const startRateValue = median(jw.rates);
    const startRatio = pairsRatio(jw.rates, bareRates);
    emit(
      row({
        scenario: NAME,
        metric: `start rate, ${ROUNDS} paired rounds of ${perRound} jobs (to the last recorded start; medians; ratio: the pairs' median)`,
        value: startRateValue,
        format: fmt.rate('jobs/s'),
        baseline: { name: 'bare spawn', value: bareRate },
        ratio: startRatio,
        budget: { text: '>= 1.00x bare spawn', pass: startRatio >= 1 },
      }),
    );
    if (tspRate === undefined) {
      emit(skipped(NAME, 'start rate vs tsp', 'tsp not installed (apt-get install task-spooler)'));
    } else {
      emit(
        row({
          scenario: NAME,
          metric: `start rate (median of the rounds) vs tsp, ${perRound} jobs (to all run)`,
          value: startRateValue,
          format: fmt.rate('jobs/s'),
          baseline: { name: 'tsp -S 16', value: tspRate },
          budget: { text: '>= 1.50x tsp', pass: startRateValue >= 1.5 * tspRate },
        }),
      );
    }
    emit(
      row({
        scenario: NAME,
        metric: 'server event-loop time per job (submit to recorded end)',
        value: jw.loopMsPerJob,
        format: fmt.ms,
        budget: { text: '< 0.3 ms', pass: jw.loopMsPerJob < 0.3 },
      }),
    );
    // The loop's busy time on a loaded machine also counts waiting for a core, and sleeping in a
    // system call; the scheduler tells the main thread's running and waiting apart (schedstat).
    emit(
      row({
        scenario: NAME,
        metric: 'server main thread on a core per job (its event loop, from schedstat)',
        value: jw.mainCpuMsPerJob,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'server main thread ready but waiting for a core, per job (schedstat)',
        value: jw.mainWaitMsPerJob,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'server CPU per job (all threads, from /proc)',
        value: jw.cpuMsPerJob,
        format: fmt.ms,
      }),
    );
    // The HTTP client shares the 2 cores with the server, the spawner and the jobs; the bare
    // loop has none. What it takes is what the server's side could not have.
    emit(
      row({
        scenario: NAME,
        metric: 'load generator CPU per job (the bench process: 16 HTTP clients and its polls)',
        value: jw.clientCpuMsPerJob,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: "the server's children per job (the spawner, the wrappers it reaped and their jobs)",
        value: jw.childrenCpuMsPerJob,
        format: fmt.ms,
      }),
    );
    // Where the 2 cores went: everything jobworker's side used per job against the bare loop's
    // process with its children (the same /bin/true in both).
    const wholeMsPerJob = jw.cpuMsPerJob + jw.childrenCpuMsPerJob + jw.clientCpuMsPerJob;
    const bareMsPerJob = (bareCpuSeconds * 1000) / count;
    emit(
      row({
        scenario: NAME,
        metric: 'CPU per job, all of it (server, its children, the load generator)',
        value: wholeMsPerJob,
        format: fmt.ms,
        baseline: { name: 'bare spawn loop and its children', value: bareMsPerJob },
        ratio: wholeMsPerJob / bareMsPerJob,
      }),
    );
    const finishRate = count / jw.finishSeconds;
    // Each round's jobs all ended before the next round (or its bare loop) began.
    emit(
      row({
        scenario: NAME,
        metric: 'completion rate (to every job of a round recorded finished; all rounds)',
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
        baseline: { name: 'bare spawn, grown', value: perRound / heavy.seconds },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `longest event-loop stall of the server during the ${fmt.count(count)} starts`,
        value: jw.longestStallMs,
        format: fmt.ms,
      }),
    );
    const latency = summarize(jw.latenciesMs);
    const bareLatency = summarize(bareLatencies);
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

    // Issue 9: the same, with thousands of long jobs alive (Node does work per live child).
    const onTop = options.full ? 4_000 : 1_000;
    // One round of each: the bare loop starts its 4,000 children anew on each run, and this
    // budget (0.8x) was not near its edge in the last two full runs (1.43x, 0.96x).
    const busy = await measureJobworker(onTop, 1, options.logLevel, RUNNING);
    const busyBare = await runNodeScript<SpawnLoopResult>(SPAWN_LOOP, [
      String(onTop),
      String(CONCURRENCY),
      '0',
      String(RUNNING),
    ]);
    const busyRate = busy.rates[0]!;
    const busyBareRate = onTop / busyBare.seconds;
    emit(
      row({
        scenario: NAME,
        metric: `start rate with ${fmt.count(RUNNING)} jobs running, ${onTop} jobs`,
        value: busyRate,
        format: fmt.rate('jobs/s'),
        baseline: { name: `bare spawn, ${fmt.count(RUNNING)} children alive`, value: busyBareRate },
        budget: { text: '>= 0.80x', pass: busyRate >= 0.8 * busyBareRate },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `server event-loop time per job with ${fmt.count(RUNNING)} running`,
        value: busy.loopMsPerJob,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `server main thread on a core per job with ${fmt.count(RUNNING)} running (schedstat)`,
        value: busy.mainCpuMsPerJob,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `server main thread waiting for a core per job with ${fmt.count(RUNNING)} running (schedstat)`,
        value: busy.mainWaitMsPerJob,
        format: fmt.ms,
      }),
    );
  },
};

/**
 * Starts `rounds` bursts of `perRound` /bin/true jobs, 16 in flight, on one fresh server with
 * `running` `sleep` jobs already running; after each burst has ended (every job of it recorded
 * finished) and the server's memory relief has run, `between` runs: the other side of the pair,
 * the first of the two in odd rounds (`pairedRound`). A burst's rate counts from its first request
 * to the last recorded start. The server's event-loop busy time, CPU and main-thread figures are
 * summed over the bursts only, each to its last recorded end (the bench's own polls, every 10 ms
 * until the last start and every 20 ms to the last end, are a small part of them).
 */
async function measureJobworker(
  perRound: number,
  rounds: number,
  logLevel: string,
  running: number,
  between?: () => Promise<void>,
) {
  const server = await ServerHandle.start({ logLevel, maxSockets: CONCURRENCY });
  try {
    if (running > 0) {
      await runPool(running, CONCURRENCY, async () => void (await startJob(server.api, SLEEPER)));
      await waitNoneQueued(server.api, 50, 600_000);
      const alive = await countJobs(server.api, 'running');
      if (alive !== running) throw new Error(`${alive} of the ${running} sleep jobs are running`);
    }
    const spec = { command: '/bin/true', name: TRUE_NAME };
    await runPool(100, CONCURRENCY, async () => void (await startJob(server.api, spec))); // warm-up
    await waitNoneQueued(server.api);
    await waitNoneRunningOf(server, running);
    const latenciesMs: number[] = [];
    const rates: number[] = [];
    const sums = {
      loopMs: 0,
      cpuSeconds: 0,
      childrenSeconds: 0,
      mainRunning: 0,
      mainWaiting: 0,
      finishSeconds: 0,
      clientUs: 0,
    };
    let longestStallMs = 0;
    let serverRss = 0;
    const burst = async () => {
      const loopBefore = await server.eventLoop();
      const cpuBefore = server.cpu();
      const childrenBefore = server.childrenCpu();
      const mainBefore = server.mainThread();
      const clientBefore = process.cpuUsage();
      const started = performance.now();
      await runPool(perRound, CONCURRENCY, async () => {
        const t0 = performance.now();
        await startJob(server.api, spec);
        latenciesMs.push(performance.now() - t0);
      });
      // The 201 comes once a job is admitted; the start rate counts to the last start. The poll's
      // lag (half its period on average, and one request) counts against jobworker alone: 10 ms
      // keeps it near 1 % of a burst of 800 on a fast host (~1 s) at a small cost to the loop.
      await waitNoneQueued(server.api, 10, 600_000);
      rates.push(perRound / ((performance.now() - started) / 1000));
      serverRss = Math.max(serverRss, server.rss());
      await waitNoneRunningOf(server, running);
      sums.finishSeconds += (performance.now() - started) / 1000;
      const client = process.cpuUsage(clientBefore);
      sums.clientUs += client.user + client.system;
      // To the burst's last recorded end: every job's whole life.
      const loopAfter = await server.eventLoop();
      sums.loopMs += loopAfter.active - loopBefore.active;
      sums.cpuSeconds += server.cpu() - cpuBefore;
      sums.childrenSeconds += server.childrenCpu() - childrenBefore;
      const mainAfter = server.mainThread();
      sums.mainRunning += mainAfter.running - mainBefore.running;
      sums.mainWaiting += mainAfter.waiting - mainBefore.waiting;
      longestStallMs = Math.max(longestStallMs, loopAfter.maxDelayMs);
      // The server's memory relief (a collection, malloc_trim, a checkpoint) runs 2 s into a quiet
      // spell: let it run here, outside every measured span, and not during the bare loop's run
      // that follows a burst in three rounds of five (on 2 cores, it would slow that run alone).
      await sleep(RELIEF_QUIET_MS + 1000);
    };
    for (let round = 0; round < rounds; round++) {
      if (between === undefined) await burst();
      else await pairedRound(round, burst, between);
    }
    const count = perRound * rounds;
    const bad = await countJobs(server.api, 'failed,lost,stopped,timed_out,cancelled');
    if (bad > 0) throw new Error(`${bad} of the /bin/true jobs did not succeed`);
    return {
      rates,
      longestStallMs,
      finishSeconds: sums.finishSeconds,
      latenciesMs,
      serverRss,
      loopMsPerJob: sums.loopMs / count,
      cpuMsPerJob: (sums.cpuSeconds * 1000) / count,
      mainCpuMsPerJob: (sums.mainRunning * 1000) / count,
      mainWaitMsPerJob: (sums.mainWaiting * 1000) / count,
      clientCpuMsPerJob: sums.clientUs / 1000 / count,
      childrenCpuMsPerJob: (sums.childrenSeconds * 1000) / count,
    };
  } finally {
    await server.close();
  }
}

const SLEEPER = { command: 'sleep', args: ['3600'] };
const TRUE_NAME = 'bench-true';

/** Polls until no /bin/true job is running (the sleepers go on). */
async function waitNoneRunningOf(server: ServerHandle, running: number): Promise<void> {
  if (running === 0) return waitNoneRunning(server.api, 20, 600_000);
  for (;;) {
    const { body } = await server.api.json<{ jobs: unknown[] }>(
      'GET',
      `/v1/jobs?status=running,queued&name=${TRUE_NAME}&limit=1`,
    );
    if (body.jobs.length === 0) return;
    await sleep(100);
  }
}

/** Seconds for tsp (task-spooler, 16 slots) to take and run `count` /bin/true, each through its client. */
async function measureTsp(count: number): Promise<number> {
  const dir = await makeScratchDir('jw-bench-tsp-');
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
    removeAfterRun(dir);
  }
}
