/**
 * Where a running server allocates: V8's sampling heap profiler, attached through the inspector
 * for a while, counting the objects the collector has freed too (they are what a CPU profile's
 * `(garbage collector)` time pays for; `--heap-prof` keeps only those still alive at its end).
 * Bytes by allocating function, file and package (self), and by package (inclusive).
 *
 *   JW_BENCH_SERVER_ARGS="--inspect=127.0.0.1:9229" JW_BENCH_FROM_SOURCES=1 \
 *     JW_BENCH_TMPDIR=/dev/shm/jwb JW_BENCH_NO_WAIT=1 npm run bench -- start-rate &
 *   bash scripts/with-node.sh node bench/allocation-profile.ts --seconds 10 [--port 9229] [--top 30] [--callers NAME]
 *
 * Start it once the server's burst is under way; only the first server of a scenario gets the
 * port (the others print that it is taken, and run without an inspector).
 */
import { parseArgs } from 'node:util';
import { fileOf, packageOf } from './lib/profile-names.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface SampleNode {
  id: number;
  callFrame: CallFrame;
  selfSize: number;
  children: SampleNode[];
}

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9229' },
    seconds: { type: 'string', default: '10' },
    interval: { type: 'string', default: '16384' },
    top: { type: 'string', default: '30' },
    callers: { type: 'string' },
  },
});
const wholeNumber = (name: string, text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name}: expected a whole number above 0, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
};
const port = wholeNumber('port', values.port);
const seconds = wholeNumber('seconds', values.seconds);
const interval = wholeNumber('interval', values.interval);
const top = wholeNumber('top', values.top);

/** One inspector session: commands answered in order of their ids. */
async function connect(url: string) {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as {
      id?: number;
      result?: unknown;
      error?: { message: string };
    };
    const pending = message.id === undefined ? undefined : waiting.get(message.id);
    if (!pending) return;
    waiting.delete(message.id!);
    if (message.error) pending.reject(new Error(message.error.message));
    else pending.resolve(message.result);
  });
  let next = 0;
  return {
    send<T>(method: string, params: object = {}): Promise<T> {
      const id = ++next;
      socket.send(JSON.stringify({ id, method, params }));
      return new Promise<T>((resolve, reject) =>
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }),
      );
    },
    close: () => socket.close(),
  };
}

const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
  webSocketDebuggerUrl: string;
}[];
const target = targets[0];
if (!target) throw new Error(`No inspector target on port ${port}`);
const session = await connect(target.webSocketDebuggerUrl);
await session.send('HeapProfiler.enable');
await session.send('HeapProfiler.startSampling', {
  samplingInterval: interval,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const { profile } = await session.send<{ profile: { head: SampleNode } }>('HeapProfiler.stopSampling');
session.close();

const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
const byPackage = new Map<string, number>();
const inclusive = new Map<string, number>();
const callers = new Map<string, number>();
let total = 0;
const frameName = (f: CallFrame) =>
  `${f.functionName || '(anonymous)'}${f.url ? ` ${fileOf(f.url)}:${f.lineNumber + 1}` : ''}`;
const walk = (node: SampleNode, stack: CallFrame[]) => {
  const { callFrame } = node;
  if (node.selfSize > 0) {
    total += node.selfSize;
    add(byFunction, frameName(callFrame), node.selfSize);
    add(byFile, callFrame.url ? fileOf(callFrame.url) : callFrame.functionName, node.selfSize);
    add(byPackage, callFrame.url ? packageOf(callFrame.url) : callFrame.functionName, node.selfSize);
    const seen = new Set<string>();
    for (const frame of [...stack, callFrame]) if (frame.url) seen.add(packageOf(frame.url));
    for (const key of seen) add(inclusive, key, node.selfSize);
    if (values.callers !== undefined && callFrame.functionName === values.callers) {
      add(callers, stack.slice(-3).reverse().map(frameName).join(' < '), node.selfSize);
    }
  }
  for (const child of node.children) walk(child, [...stack, callFrame]);
};
walk(profile.head, []);

const table = (title: string, map: Map<string, number>) =>
  [
    `\n${title}`,
    ...[...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([key, n]) =>
          `  ${((100 * n) / total).toFixed(1).padStart(5)} %  ${(n / 1e6).toFixed(1).padStart(7)} MB  ${key}`,
      ),
  ].join('\n');
console.log(
  [
    `allocated in ${seconds} s (sampled every ${interval} bytes, freed objects included): ${(total / 1e6).toFixed(1)} MB`,
    table('self, by allocating function', byFunction),
    table('self, by file', byFile),
    table('self, by package', byPackage),
    table('inclusive, by package (an allocation counts once per package on its stack)', inclusive),
    ...(values.callers === undefined ? [] : [table(`${values.callers}, by its callers`, callers)]),
  ].join('\n'),
);
