import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { percentile } from '../lib/stats.ts';

const NAME = 'run-latency';
/**
 * The pause before each job: a job started alone, as a user starts one, not one of a burst. The
 * kernel's cgroup lock drops back to its fast mode between starts this far apart, so a job that
 * joins a cgroup by `cgroup.procs` waits for an RCU grace period every time (what the spawner's
 * clone3 into the v2 cgroup spares it).
 */
const GAP_MS = 100;

export const runLatency: Scenario = {
  name: NAME,
  summary: `one /bin/true job at a time through POST /run, ${GAP_MS} ms apart, 30 (--full: 100): request to ended vs a bare spawn`,
  async run(options, emit) {
    const rounds = options.full ? 100 : 30;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const jw: number[] = [];
    const bare: number[] = [];
    try {
      await runOnce(server); // the route, its validator and the spawner warmed up
      for (let round = 0; round < rounds; round++) {
        await delay(GAP_MS);
        jw.push(await runOnce(server));
        await delay(GAP_MS);
        bare.push(await spawnOnce());
      }
    } finally {
      await server.close();
    }
    const sorted = { jw: Float64Array.from(jw).sort(), bare: Float64Array.from(bare).sort() };
    for (const p of [50, 99]) {
      emit(
        row({
          scenario: NAME,
          metric: `POST /run of /bin/true, request -> ended (answer head), ${GAP_MS} ms apart, p${p} of ${rounds}`,
          value: percentile(sorted.jw, p),
          format: fmt.ms,
          baseline: { name: 'spawn(/bin/true) -> exit', value: percentile(sorted.bare, p) },
        }),
      );
    }
  },
};

/** Milliseconds from the request to the answer's head, which `/run` sends once the job ended. */
async function runOnce(server: ServerHandle): Promise<number> {
  const started = performance.now();
  const res = await server.api.open('POST', '/run', { body: { command: '/bin/true' }, agent: false });
  const ms = performance.now() - started;
  res.destroy();
  if (res.statusCode !== 200 || res.headers['x-jobworker-status'] !== 'succeeded') {
    throw new Error(
      `POST /run answered ${res.statusCode} with status ${String(res.headers['x-jobworker-status'])}`,
    );
  }
  return ms;
}

async function spawnOnce(): Promise<number> {
  const started = performance.now();
  const child = spawn('/bin/true', [], { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`/bin/true exited with ${code}`);
  return performance.now() - started;
}
