import autocannon from 'autocannon';
import { ChildHandle } from '../lib/child-handle.ts';
import { startJob, waitNoneRunning } from '../lib/jobs.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';

const NAME = 'api-get';
const BARE_FASTIFY = new URL('../baselines/bare-fastify-process.ts', import.meta.url).pathname;
const CONNECTIONS = 50;

export const apiGet: Scenario = {
  name: NAME,
  summary: `GET /v1/jobs/{id} at ${CONNECTIONS} connections (autocannon), 5 s (--full: 30 s), vs a bare Fastify route`,
  async run(options, emit) {
    const duration = options.full ? 30 : 5;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    let jw: autocannon.Result;
    let body: string;
    let path: string;
    try {
      const job = await startJob(server.api, { command: '/bin/true' });
      await waitNoneRunning(server.api);
      path = `/v1/jobs/${job.id}`;
      const answer = await server.api.json<unknown>('GET', path);
      body = JSON.stringify(answer.body);
      const headers = { authorization: `Bearer ${server.token}` };
      await load(`${server.url}${path}`, headers, 1); // warm-up
      jw = await load(`${server.url}${path}`, headers, duration);
    } finally {
      await server.close();
    }
    const bare = await ChildHandle.start(BARE_FASTIFY, [body]);
    let base: autocannon.Result;
    try {
      await load(`${bare.ready.url}${path}`, {}, 1);
      base = await load(`${bare.ready.url}${path}`, {}, duration);
    } finally {
      await bare.close();
    }
    const value = jw.requests.average;
    const baseline = base.requests.average;
    emit(
      row({
        scenario: NAME,
        metric: `GET /v1/jobs/{id}, ${CONNECTIONS} connections, ${duration} s`,
        value,
        format: fmt.rate('req/s'),
        baseline: { name: 'bare Fastify route', value: baseline },
        budget: { text: '>= 0.60x', pass: value >= 0.6 * baseline },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'latency p99',
        value: jw.latency.p99,
        format: fmt.ms,
        baseline: { name: 'bare Fastify route', value: base.latency.p99 },
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
