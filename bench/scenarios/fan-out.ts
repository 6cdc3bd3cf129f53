import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Follower, followRaw, followSse, type OnBytes } from '../lib/followers.ts';
import { getJob, startJob } from '../lib/jobs.ts';
import { LineLatency } from '../lib/line-latency.ts';
import { runPool } from '../lib/pool.ts';
import { RssSampler } from '../lib/proc.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { summarize } from '../lib/stats.ts';

const NAME = 'fan-out';
const TICK_WRITER = new URL('../fixtures/tick-writer.ts', import.meta.url).pathname;
const FOLLOWERS = 1000;
/** 100 lines of 1,000 bytes a second: 100 KB/s per follower, 100 MB/s to deliver in all. */
const INTERVAL_MS = 10;
const LINE_BYTES = 1000;

/** What one run of followers measured. */
interface FanOutRun {
  readonly expectedBytes: number;
  readonly complete: number;
  readonly received: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly clientCpuSeconds: number;
  readonly peakRss: number;
  readonly idleRss: number;
  readonly attachMs: number;
  readonly attachCpuMs: number;
  readonly latency: ReturnType<typeof summarize>;
  readonly spread: ReturnType<typeof summarize>;
}

export const fanOut: Scenario = {
  name: NAME,
  summary:
    `${FOLLOWERS} raw followers of one job from cursor 0, 100 KB/s each for 5 s (--full: 30 s); ` +
    `then ${FOLLOWERS} event-stream (SSE) followers, as browsers follow`,
  async run(options, emit) {
    const durationMs = options.full ? 30_000 : 5_000;
    const raw = await measure(options.logLevel, durationMs, followRaw);
    emit(everyByte('followers', raw));
    emit(
      row({
        scenario: NAME,
        metric: `the ${fmt.count(FOLLOWERS)} followers attached to the running job (50 opening at a time), until the last answer head`,
        value: raw.attachMs,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'server CPU per follower attached',
        value: raw.attachCpuMs,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `aggregate delivered (~100 MB/s offered), over ${raw.seconds.toFixed(1)} s`,
        value: raw.received / 1e6 / raw.seconds,
        format: fmt.mbps,
      }),
    );
    emit(row({ scenario: NAME, metric: 'write -> arrival p50', value: raw.latency.p50, format: fmt.ms }));
    emit(
      row({
        scenario: NAME,
        metric: `write -> arrival p99 (${fmt.count(raw.latency.n)} line arrivals)`,
        value: raw.latency.p99,
        format: fmt.ms,
        budget: { text: 'p99 < 50 ms', pass: raw.latency.p99 < 50 },
      }),
    );
    emit(row({ scenario: NAME, metric: 'write -> arrival max', value: raw.latency.max, format: fmt.ms }));
    // How long one wakeup takes to reach every follower: the part of a line's latency that its
    // place in the round decides, on top of the wait for the round (docs/performance.md).
    emit(
      row({
        scenario: NAME,
        metric: `one line's arrivals, first to last of the ${fmt.count(FOLLOWERS)} followers, p50`,
        value: raw.spread.p50,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: "one line's arrivals, first to last, p99",
        value: raw.spread.p99,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'server CPU (share of one core)',
        value: raw.cpuSeconds / raw.seconds,
        format: fmt.percent,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'load generator CPU (the followers, same machine)',
        value: raw.clientCpuSeconds / raw.seconds,
        format: fmt.percent,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `server peak RSS (idle: ${fmt.mb(raw.idleRss)})`,
        value: raw.peakRss,
        format: fmt.mb,
        budget: { text: '< 300 MB', pass: raw.peakRss < 300e6 },
      }),
    );

    // The same job followed by event streams (`Accept: text/event-stream`, as the dashboard's
    // EventSource asks): every batch goes out as base64 text in events, made once per shared
    // read. The load generator is the busier side here: its thousand `node:http` responses and
    // their base64 took 82-90 % of its core in this pass's runs, against 47-49 % for raw followers.
    const sse = await measure(options.logLevel, durationMs, followSse);
    emit(everyByte('SSE followers', sse));
    emit(
      row({
        scenario: NAME,
        metric: 'SSE: server CPU (share of one core)',
        value: sse.cpuSeconds / sse.seconds,
        format: fmt.percent,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'SSE: load generator CPU (the followers, same machine)',
        value: sse.clientCpuSeconds / sse.seconds,
        format: fmt.percent,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `SSE: write -> arrival p99 (${fmt.count(sse.latency.n)} line arrivals)`,
        value: sse.latency.p99,
        format: fmt.ms,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `SSE: server peak RSS (idle: ${fmt.mb(sse.idleRss)})`,
        value: sse.peakRss,
        format: fmt.mb,
      }),
    );
  },
};

/** The row that checks a run's followers (`who`) each got every byte. */
function everyByte(who: string, run: FanOutRun) {
  return row({
    scenario: NAME,
    metric: `${who} that got every byte (${fmt.mb(run.expectedBytes)} each)`,
    value: run.complete,
    format: (v) => `${fmt.count(v)} of ${FOLLOWERS}`,
    budget: { text: 'all', pass: run.complete === FOLLOWERS },
  });
}

/**
 * Starts a server and a job that writes a line every `INTERVAL_MS` for `durationMs` once told to,
 * attaches `FOLLOWERS` followers made by `follow` (50 opening at a time), lets the job go and
 * measures until every follower has the job's end.
 */
async function measure(
  logLevel: string,
  durationMs: number,
  follow: (api: ServerHandle['api'], id: string, onBytes: OnBytes) => Follower,
): Promise<FanOutRun> {
  // The service refuses follows beyond its limit (SERVICE_DEFAULTS.maxFollowers, 4096), which
  // runServer does not expose; 1,000 fits under it.
  const server = await ServerHandle.start({ logLevel });
  const followers: LineLatency[] = Array.from({ length: FOLLOWERS }, () => new LineLatency());
  const idleRss = server.rss();
  try {
    const goFile = join(server.dataDir, 'go');
    const args = [TICK_WRITER, goFile, String(INTERVAL_MS), String(durationMs), String(LINE_BYTES)];
    const job = await startJob(server.api, { command: process.execPath, args });
    const streams: Follower[] = [];
    const attachCpu = server.cpu();
    const attachStarted = performance.now();
    await runPool(FOLLOWERS, 50, async (i) => {
      const follower = follow(server.api, job.id, (text, at) => followers[i]!.push(text, at));
      streams.push(follower);
      await follower.opened;
    });
    const attachMs = performance.now() - attachStarted;
    const attachCpuMs = ((server.cpu() - attachCpu) * 1000) / FOLLOWERS;
    const rss = new RssSampler(server.pid, 50);
    const cpu = server.cpu();
    const clientCpu = process.cpuUsage();
    const started = performance.now();
    await writeFile(goFile, '');
    const statuses = await Promise.all(streams.map((f) => f.ended));
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = server.cpu() - cpu;
    const used = process.cpuUsage(clientCpu);
    const clientCpuSeconds = (used.user + used.system) / 1e6;
    const peakRss = rss.stop();
    const notDone = statuses.filter((s) => s !== 'succeeded').length;
    if (notDone > 0) throw new Error(`${notDone} followers ended without the job's final status`);
    const expectedBytes = (await getJob(server.api, job.id)).outputBytes.stdout;
    const whole = followers.filter((f) => f.problem === undefined && f.bytes === expectedBytes);
    return {
      expectedBytes,
      complete: whole.length,
      received: followers.reduce((sum, f) => sum + f.bytes, 0),
      seconds,
      cpuSeconds,
      clientCpuSeconds,
      peakRss,
      idleRss,
      attachMs,
      attachCpuMs,
      latency: summarize(followers.flatMap((f) => f.latenciesMs)),
      spread: summarize(arrivalSpreads(whole)),
    };
  } finally {
    await server.close();
  }
}

/**
 * For each line, the time from its first arrival to its last (ms), among followers that got every
 * line once and in order (so that the n-th arrival of each is the same line).
 */
function arrivalSpreads(followers: readonly LineLatency[]): number[] {
  if (followers.length === 0) return [];
  const lines = Math.min(...followers.map((f) => f.arrivedMicros.length));
  const spreads: number[] = [];
  for (let line = 0; line < lines; line++) {
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const f of followers) {
      const at = f.arrivedMicros[line]!;
      if (at < first) first = at;
      if (at > last) last = at;
    }
    spreads.push((last - first) / 1000);
  }
  return spreads;
}
