/**
 * Baseline of the memory per job: a bare Node process (like the server's) that spawns `sleep`
 * children and holds them, reporting its RSS after a gc before any child and at each checkpoint.
 * Children are process-group leaders with stdio to /dev/null, as jobworker starts its jobs; all
 * are killed before it exits. Prints `{before, at: {COUNT: rssBytes}}`.
 *
 *   node --expose-gc bench/baselines/spawn-holder.ts CHECKPOINT...
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';

const checkpoints = process.argv.slice(2).map(Number);
const devNull = openSync('/dev/null', 'w');
const children: ChildProcess[] = [];

function settledRss(): number {
  globalThis.gc?.();
  return process.memoryUsage.rss();
}

const before = settledRss();
const at: Record<number, number> = {};
for (const checkpoint of checkpoints) {
  while (children.length < checkpoint) {
    const child = spawn('sleep', ['3600'], { stdio: ['ignore', devNull, devNull], detached: true });
    await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
    children.push(child);
  }
  at[checkpoint] = settledRss();
}
await Promise.all(
  children.map((child) => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGKILL');
    return exited;
  }),
);
process.stdout.write(JSON.stringify({ before, at }));
