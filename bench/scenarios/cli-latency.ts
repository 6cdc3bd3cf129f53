import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { startJob, waitNoneRunning } from '../lib/jobs.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { median } from '../lib/stats.ts';

const NAME = 'cli-latency';
const LAUNCHER = new URL('../../bin/jobworker', import.meta.url).pathname;

/**
 * How long a CLI command takes to answer, as a person typing it waits: the whole process, the
 * launcher included, against `node -e 0` on the same Node, run in turn (A B A B ...) so that a
 * machine whose speed drifts moves both alike. The CLI runs what `bin/jobworker` runs: the
 * emitted JavaScript of dist/ when `scripts/build.sh` has made it current.
 */
export const cliLatency: Scenario = {
  name: NAME,
  summary: 'jobworker --version and status ID, 20 runs each (--full: 60), vs `node -e 0`',
  async run(options, emit) {
    const runs = options.full ? 60 : 20;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    try {
      const job = await startJob(server.api, { command: '/bin/true' });
      await waitNoneRunning(server.api);
      const env = { ...process.env, JOBWORKER_URL: server.url, JOBWORKER_TOKEN: server.token };
      const commands: [string, string[]][] = [
        ['jobworker --version', ['--version']],
        ['jobworker status ID', ['status', job.id]],
      ];
      for (const [label, args] of commands) {
        const cli: number[] = [];
        const bare: number[] = [];
        timed(LAUNCHER, args, env); // warm-up: the compile cache and the page cache
        timed(process.execPath, ['-e', '0'], env);
        for (let i = 0; i < runs; i++) {
          cli.push(timed(LAUNCHER, args, env));
          bare.push(timed(process.execPath, ['-e', '0'], env));
        }
        const value = median(cli);
        const baseline = median(bare);
        emit(
          row({
            scenario: NAME,
            metric: `${label}, p50 of ${runs}`,
            value,
            format: fmt.ms,
            baseline: { name: 'node -e 0', value: baseline },
            budget: { text: '<= 1.50x', pass: value <= 1.5 * baseline },
          }),
        );
      }
    } finally {
      await server.close();
    }
  },
};

/** Runs a command to its end and returns its wall time in ms; throws when it fails. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv): number {
  const began = performance.now();
  const result = spawnSync(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - began;
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status}: ${result.stderr.toString()}`);
  }
  return ms;
}
