import type { IncomingMessage } from 'node:http';
import { RELIEF_QUIET_MS } from '../../src/memory/memory-relief.ts';
import { runPool, sleep } from '../lib/pool.ts';
import { RssSampler } from '../lib/proc.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';

const NAME = 'follower-churn';
const FOLLOWERS = 50;
const ROUNDS = 4;

/**
 * Whether the server gives memory back after many big follows: a finished job's output (20 MB by
 * default, the 200 MB with --full) is followed over SSE from cursor 0 to its `end` event
 * by 50 clients at once, four rounds in turn. The server's RSS (after a collection, settled)
 * after the last round is compared with its level before the first.
 */
export const followerChurn: Scenario = {
  name: NAME,
  summary: `${ROUNDS} rounds of ${FOLLOWERS} SSE followers of a 20 MB output (--full: 200 MB): RSS after vs before`,
  async run(options, emit) {
    const size = options.full ? '200M' : '20M';
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const after: number[] = [];
    let before = 0;
    let peak = 0;
    let seconds = 0;
    try {
      // POST /run answers once the job has ended; its body (the output) is not wanted here.
      const ran = await server.api.open('POST', '/run', {
        body: { command: 'head', args: ['-c', size, '/dev/zero'] },
        agent: false,
      });
      ran.destroy();
      const id = ran.headers['x-jobworker-job-id'];
      if (ran.statusCode !== 200 || typeof id !== 'string')
        throw new Error(`POST /run answered ${ran.statusCode}`);
      before = await settledRss(server);
      const sampler = new RssSampler(server.pid, 100);
      const started = performance.now();
      for (let round = 0; round < ROUNDS; round++) {
        await runPool(FOLLOWERS, FOLLOWERS, async () => {
          const res = await server.api.open('GET', `/v1/jobs/${id}/output?follow=true`, {
            headers: { accept: 'text/event-stream' },
            agent: false,
          });
          await untilEndEvent(res);
        });
        after.push(await settledRss(server));
      }
      seconds = (performance.now() - started) / 1000;
      peak = sampler.stop();
    } finally {
      await server.close();
    }
    const last = after.at(-1)!;
    emit(
      row({
        scenario: NAME,
        metric: `server RSS after ${ROUNDS} rounds of ${FOLLOWERS} SSE followers of ${size} (${after.map(fmt.mb).join(', ')})`,
        value: last,
        format: fmt.mb,
        baseline: { name: 'before the first round', value: before },
        budget: { text: '<= 1.30x', pass: last <= 1.3 * before },
      }),
    );
    emit(row({ scenario: NAME, metric: 'server peak RSS meanwhile', value: peak, format: fmt.mb }));
    emit(row({ scenario: NAME, metric: 'time for all rounds', value: seconds, format: fmt.s }));
  },
};

/** Reads an SSE response to its end without decoding it; throws unless its last event is `end`. */
async function untilEndEvent(res: IncomingMessage): Promise<void> {
  if (res.statusCode !== 200) throw new Error(`Follow answered ${res.statusCode}`);
  let tail = '';
  for await (const chunk of res as AsyncIterable<Buffer>) {
    tail = (tail + chunk.toString('latin1', Math.max(0, chunk.length - 4096))).slice(-8192);
  }
  if (!tail.includes('event: end\n')) throw new Error('An SSE follow ended without its end event');
}

/** RSS after a full collection, once the server has been quiet long enough to give memory back. */
async function settledRss(server: ServerHandle): Promise<number> {
  await sleep(RELIEF_QUIET_MS + 1000);
  await server.gc();
  return server.rss();
}
