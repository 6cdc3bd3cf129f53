import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { followWatchedFile } from '../baselines/watched-file.ts';
import { followRaw, followSse } from '../lib/followers.ts';
import { startJob } from '../lib/jobs.ts';
import { LineLatency } from '../lib/line-latency.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { summarize } from '../lib/stats.ts';

const NAME = 'follow-latency';
const TICK_WRITER = new URL('../fixtures/tick-writer.ts', import.meta.url).pathname;
const INTERVAL_MS = 1;
const LINE_BYTES = 32;

export const followLatency: Scenario = {
  name: NAME,
  summary: 'a line every ms for 10 s (--full: 60 s): write -> arrival at a raw and an SSE follower',
  async run(options, emit) {
    const durationMs = options.full ? 60_000 : 10_000;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const raw = new LineLatency();
    const sse = new LineLatency();
    let cpuSeconds = 0;
    try {
      const goFile = join(server.dataDir, 'go');
      const args = [TICK_WRITER, goFile, String(INTERVAL_MS), String(durationMs), String(LINE_BYTES)];
      const job = await startJob(server.api, { command: process.execPath, args });
      const followers = [
        followRaw(server.api, job.id, (text, at) => raw.push(text, at)),
        followSse(server.api, job.id, (text, at) => sse.push(text, at)),
      ];
      await Promise.all(followers.map((f) => f.opened));
      const cpu = server.cpu();
      await writeFile(goFile, '');
      const statuses = await Promise.all(followers.map((f) => f.ended));
      cpuSeconds = server.cpu() - cpu;
      if (statuses.some((s) => s !== 'succeeded'))
        throw new Error(`Followers ended with ${statuses.join(', ')}`);
    } finally {
      await server.close();
    }
    const bare = await followWatchedFile(INTERVAL_MS, durationMs, LINE_BYTES);
    for (const [name, lines] of [
      ['raw', raw],
      ['SSE', sse],
      ['bare watch', bare],
    ] as const) {
      if (lines.problem !== undefined) throw new Error(`${name} follower: ${lines.problem}`);
      if (lines.lines < durationMs / INTERVAL_MS / 2)
        throw new Error(`${name} follower got ${lines.lines} lines`);
    }
    const base = summarize(bare.latenciesMs);
    for (const [name, lines] of [
      ['raw HTTP follower', raw],
      ['SSE follower', sse],
    ] as const) {
      const s = summarize(lines.latenciesMs);
      const metric = `${name}, write -> arrival (${s.n} lines)`;
      const baseline = (value: number) => ({ name: 'bare fs.watch reader', value });
      emit(
        row({
          scenario: NAME,
          metric: `${metric} p50`,
          value: s.p50,
          format: fmt.ms,
          baseline: baseline(base.p50),
        }),
      );
      emit(
        row({
          scenario: NAME,
          metric: `${metric} p99`,
          value: s.p99,
          format: fmt.ms,
          baseline: baseline(base.p99),
          budget: { text: 'p99 < 2 ms', pass: s.p99 < 2 },
        }),
      );
      emit(
        row({
          scenario: NAME,
          metric: `${metric} max`,
          value: s.max,
          format: fmt.ms,
          baseline: baseline(base.max),
        }),
      );
    }
    // What each line costs the server: its observation, the followers' shared read, two writes.
    emit(
      row({
        scenario: NAME,
        metric: 'server CPU per line written (both followers, all threads)',
        value: (cpuSeconds * 1e6) / Math.max(raw.lines, 1),
        format: (us) => `${us.toFixed(1)} us`,
      }),
    );
  },
};
