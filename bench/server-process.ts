/**
 * The jobworker server as its own process, so that its RSS and CPU can be read from /proc apart
 * from the load generator's. Started by `bench/lib/server-handle.ts` over an IPC channel:
 *
 *   node --expose-gc bench/server-process.ts DATA_DIR LOG_LEVEL
 *
 * It answers `{type: 'ready', url, adminTokenFile}`, then obeys `{type: 'gc'}` (answers
 * `{type: 'gc:done'}`), `{type: 'elu'}` (answers `{type: 'elu:done', active, idle, maxDelayMs}`: the longest event-loop stall since the last `elu`) and `{type: 'close'}` (closes the server, answers `{type: 'closed'}`, exits).
 */
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { loadRunServer } from '../src/cli/server-commands.ts';
import type { ChildRequest } from './lib/child-protocol.ts';

const [dataDir, logLevel = 'info'] = process.argv.slice(2);
if (dataDir === undefined) throw new Error('Expected a data directory as the first argument');

// The server as users run it: the minified bundle bin/jobworker runs (bench/run.ts builds it
// first), not the TypeScript sources, whose speed and memory differ from it (the bundle once
// spent a fifth more CPU per request than the sources did; see scripts/bundle-server.ts).
// JW_BENCH_FROM_SOURCES=1 runs the sources instead: a profile then names every function.
const runServer =
  process.env.JW_BENCH_FROM_SOURCES === '1'
    ? (await import('../src/main.ts')).runServer
    : await (
        createRequire(import.meta.url)('../dist/jobworker-serve.cjs') as {
          loadRunServer: typeof loadRunServer;
        }
      ).loadRunServer();

// Plain HTTP on loopback: the benchmarks measure the server's own work against baselines that
// speak plain HTTP (bench/baselines/), so TLS would only add a constant cost to both sides' gap.
// Admin jobs run as root (as the test harness runs them), so that fixtures may read the files the
// bench puts in the server's data directory (the `go` file of follow-latency and fan-out); the
// account switch a pool account adds to a start is three system calls in the job's own process.
const server = await runServer({
  listen: '127.0.0.1:0',
  dataDir,
  logLevel,
  insecureHttp: true,
  adminRunAs: 'root',
});
process.send?.({ type: 'ready', url: server.url, adminTokenFile: server.adminTokenFile });

// The longest stall of the server's event loop between two `elu` requests (a timer every 10 ms
// measures how late it fires: a stall of 130 ms reads as ~130 ms).
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();

process.on('message', (message: ChildRequest) => {
  if (message.type === 'gc') {
    // What the server's own memory relief does once quiet (a last-resort collection, which also
    // gives back the young generation a burst grew, then malloc_trim), so that RSS readings taken
    // after it compare like with like.
    server.releaseMemory().then(
      () => process.send?.({ type: 'gc:done' }),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else if (message.type === 'elu') {
    const { active, idle } = performance.eventLoopUtilization();
    const maxDelayMs = delay.count > 0 ? delay.max / 1e6 : 0;
    delay.reset();
    process.send?.({ type: 'elu:done', active, idle, maxDelayMs });
  } else if (message.type === 'close') {
    server.close().then(
      () => process.send?.({ type: 'closed' }, () => process.exit(0)),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
});
