/**
 * Baseline of the start rate: a bare `child_process.spawn` loop, in a fresh Node process like
 * the server's. `COUNT` runs of /bin/true, `CONCURRENCY` alive at once, stdio as file
 * descriptors (/dev/null) and each child a process-group leader, as jobworker starts its jobs.
 * Prints `{seconds, latenciesMs, rssBytes, cpuSeconds}`: the whole run, each spawn() call until
 * its `spawn` event, the loop's RSS, and the CPU the run took (the loop's own and its reaped
 * children's). With RSS_MB, it first grows its heap with live data until its RSS
 * is that size: Node forks, so the parent's size costs every spawn, and this tells that cost
 * apart from the rest. With HOLD, it first starts HOLD `sleep 3600` children (as process-group
 * leaders) and keeps them alive during the loop: Node does work per live child on every exit,
 * and a job runner with thousands of long jobs meets that cost. They are killed at the end.
 *
 *   node bench/baselines/spawn-loop.ts COUNT CONCURRENCY [RSS_MB] [HOLD]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync } from 'node:fs';
import { runPool } from '../lib/pool.ts';
import { cpuWithReapedSeconds } from '../lib/proc.ts';

const count = Number(process.argv[2] ?? 2000);
const concurrency = Number(process.argv[3] ?? 16);
const targetRss = Number(process.argv[4] ?? 0) * 1e6;
const hold = Number(process.argv[5] ?? 0);
// Small strings in arrays, as a server's heap holds them (one big Buffer would not be touched).
const ballast: string[][] = [];
while (process.memoryUsage.rss() < targetRss) {
  ballast.push(Array.from({ length: 1024 }, (_, j) => `${ballast.length}:${j}:${'x'.repeat(24)}`));
}
const devNull = openSync('/dev/null', 'w');
const latenciesMs: number[] = [];

function runOne(record: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/bin/true', [], { stdio: ['ignore', devNull, devNull], detached: true });
    child.once('spawn', () => {
      if (record) latenciesMs.push(performance.now() - t0);
    });
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
}

const held: ChildProcess[] = [];
for (let i = 0; i < hold; i++) {
  held.push(spawn('sleep', ['3600'], { stdio: ['ignore', devNull, devNull], detached: true }));
}
await Promise.all(held.map((child) => once(child, 'spawn')));

await runPool(100, concurrency, () => runOne(false)); // warm-up
const cpuBefore = cpuWithReapedSeconds('self');
const started = performance.now();
await runPool(count, concurrency, () => runOne(true));
const seconds = (performance.now() - started) / 1000;
const cpuSeconds = cpuWithReapedSeconds('self') - cpuBefore;
const rssBytes = process.memoryUsage.rss();
for (const child of held) process.kill(-child.pid!, 'SIGKILL');
// The ballast is printed (its length) so that it stays alive to the end.
process.stdout.write(
  JSON.stringify({ seconds, latenciesMs, rssBytes, cpuSeconds, ballastChunks: ballast.length }),
);
