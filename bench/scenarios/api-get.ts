import autocannon from 'autocannon';
import { ChildHandle } from '../lib/child-handle.ts';
import { startJob, waitNoneRunning } from '../lib/jobs.ts';
import { pairedRound, pairsRatio } from '../lib/paired-rounds.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { median } from '../lib/stats.ts';

const NAME = 'api-get';
const BARE_FASTIFY = new URL('../baselines/bare-fastify-process.ts', import.meta.url).pathname;
const CONNECTIONS = 50;

/**
 * Rounds of load on jobworker and on the bare route in turn (the order alternating), each round a
 * pair. The ratio judged is the median of the pairs' ratios: a stretch of this shared host's noise
 * slows both sides of a pair, and a burst that hits one side only is left out by the median. Each
 * side's figure shown is the median of its rounds. One 5 s run of each, one after the other, gave
 * ratios from 0.55x to 0.84x on the same build; medians of each side's 5 rounds, 0.56x to 1.01x.
 */
export const apiGet: Scenario = {
  name: NAME,
  summary: `GET /v1/jobs/{id} at ${CONNECTIONS} connections (autocannon), 9 rounds of 1 s (--full: 15 of 2 s) on each side in pairs, vs a bare Fastify route`,
  async run(options, emit) {
    const rounds = options.full ? 15 : 9;
    const seconds = options.full ? 2 : 1;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    let bare: ChildHandle | undefined;
    const rates = { jw: [] as number[], bare: [] as number[] };
    const p99 = { jw: [] as number[], bare: [] as number[] };
    try {
      const job = await startJob(server.api, { command: '/bin/true' });
      await waitNoneRunning(server.api);
      const path = `/v1/jobs/${job.id}`;
      const answer = await server.api.json<unknown>('GET', path);
      bare = await ChildHandle.start(BARE_FASTIFY, [JSON.stringify(answer.body)]);
      const sides = {
        jw: (duration = seconds) =>
          load(`${server.url}${path}`, { authorization: `Bearer ${server.token}` }, duration),
        bare: (duration = seconds) => load(`${bare!.ready.url}${path}`, {}, duration),
      };
      // Warm-up: both servers' code optimized and heaps grown before the first round counts (after
      // 1 s, jobworker's first round was still a quarter slower than the next ones).
      await sides.jw(2);
      await sides.bare(2);
      const measure = (side: 'jw' | 'bare') => async () => {
        const result = await sides[side]();
        rates[side].push(result.requests.average);
        p99[side].push(result.latency.p99);
      };
      for (let round = 0; round < rounds; round++) await pairedRound(round, measure('jw'), measure('bare'));
    } finally {
      await bare?.close();
      await server.close();
    }
    const value = median(rates.jw);
    const baseline = median(rates.bare);
    const ratio = pairsRatio(rates.jw, rates.bare);
    emit(
      row({
        scenario: NAME,
        metric: `GET /v1/jobs/{id}, ${CONNECTIONS} connections, ${rounds} paired rounds of ${seconds} s (ratio: the pairs' median)`,
        value,
        format: fmt.rate('req/s'),
        baseline: { name: 'bare Fastify route', value: baseline },
        ratio,
        budget: { text: '>= 0.60x', pass: ratio >= 0.6 },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'latency p99 (median of the rounds)',
        value: median(p99.jw),
        format: fmt.ms,
        baseline: { name: 'bare Fastify route', value: median(p99.bare) },
      }),
    );
  },
};

async function load(
  url: string,
  headers: Record<string, string>,
  duration: number,
): Promise<autocannon.Result> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration, headers });
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`autocannon on ${url}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
  }
  return result;
}
