import { countJobs, startJob, waitNoneQueued, waitNoneRunning } from '../lib/jobs.ts';
import { runNodeScript } from '../lib/node-script.ts';
import { runPool, sleep } from '../lib/pool.ts';
import { openFds } from '../lib/proc.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';

const NAME = 'memory-per-job';
const SPAWN_HOLDER = new URL('../baselines/spawn-holder.ts', import.meta.url).pathname;
const CONCURRENCY = 16;

export const memoryPerJob: Scenario = {
  name: NAME,
  summary: 'server RSS with 1,000 and 2,000 running `sleep` jobs (--full: 1,000 and 5,000), per job',
  async run(options, emit) {
    const checkpoints = options.full ? [1000, 5000] : [1000, 2000];
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const at: Record<number, { rss: number; fds: number }> = {};
    let before = 0;
    let errors = 0;
    let startSeconds = 0;
    let stopSeconds = 0;
    try {
      // Warm-up: the start path compiled and the routes' first allocations made.
      await runPool(50, CONCURRENCY, async () => void (await startJob(server.api, { command: '/bin/true' })));
      await waitNoneRunning(server.api);
      before = await settledRss(server);
      const spec = { command: 'sleep', args: ['3600'] };
      let running = 0;
      const started = performance.now();
      for (const checkpoint of checkpoints) {
        await runPool(checkpoint - running, CONCURRENCY, async () => {
          try {
            const job = await startJob(server.api, spec);
            if (job.status !== 'running' && job.status !== 'queued') errors++;
          } catch {
            errors++;
          }
        });
        await waitNoneQueued(server.api, 10, 600_000); // a submission answers once admitted; count started jobs
        running = checkpoint;
        at[checkpoint] = { rss: await settledRss(server), fds: openFds(server.pid) };
      }
      startSeconds = (performance.now() - started) / 1000;
      const live = await countJobs(server.api, 'running');
      if (live !== running - errors) errors += running - errors - live;
      const stopping = performance.now();
      await server.close();
      stopSeconds = (performance.now() - stopping) / 1000;
    } finally {
      await server.close();
    }
    const bare = await runNodeScript<{ before: number; at: Record<string, number> }>(
      SPAWN_HOLDER,
      checkpoints.map(String),
      ['--expose-gc'],
    );
    for (const checkpoint of checkpoints) {
      const perJob = (at[checkpoint]!.rss - before) / checkpoint;
      const barePerChild = (bare.at[checkpoint]! - bare.before) / checkpoint;
      emit(
        row({
          scenario: NAME,
          metric: `server RSS per running job at ${fmt.count(checkpoint)} (${fmt.mb(at[checkpoint]!.rss)}; idle ${fmt.mb(before)})`,
          value: perJob,
          format: fmt.kb,
          baseline: { name: 'bare Node holding children', value: barePerChild },
          budget: { text: '< 20 KiB/job', pass: perJob < 20 * 1024 },
        }),
      );
      emit(
        row({
          scenario: NAME,
          metric: `server open descriptors at ${fmt.count(checkpoint)} jobs`,
          value: at[checkpoint]!.fds,
          format: fmt.count,
        }),
      );
    }
    const total = checkpoints.at(-1)!;
    emit(
      row({
        scenario: NAME,
        metric: `jobs refused or not running, of ${fmt.count(total)}`,
        value: errors,
        format: fmt.count,
        budget: { text: '0', pass: errors === 0 },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `time to start ${fmt.count(total)} sleep jobs`,
        value: startSeconds,
        format: fmt.s,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `time to stop them all (API, grace 0)`,
        value: stopSeconds,
        format: fmt.s,
      }),
    );
  },
};

/** RSS after a full collection, once the server has had a moment to settle. */
async function settledRss(server: ServerHandle): Promise<number> {
  await sleep(500);
  await server.gc();
  return server.rss();
}
