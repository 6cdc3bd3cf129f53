/**
 * Summarizes a V8 CPU profile (`--cpu-prof`) of the server: where its busy time went, by function
 * (self time), by file and by package (self and inclusive). Kept here because every performance
 * pass needed it and wrote it again in /tmp.
 *
 *   JW_BENCH_FROM_SOURCES=1 JW_BENCH_SERVER_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" \
 *     npm run bench -- start-rate
 *   bash scripts/with-node.sh node bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 40] [--callers readFileUtf8 [--depth 6]]
 *
 * Percentages are of the busy time (every sample but `(idle)`, each weighing its interval).
 * "Inclusive" counts a sample once for each package on its stack, so a package's figure holds what
 * it called. `--callers NAME` adds, for the functions of that name, the chains of callers their
 * self time came through (`--depth` frames up, 3 unless told). For where the allocations (and so the collector's time)
 * come from, see bench/allocation-profile.ts.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileOf, packageOf } from './lib/profile-names.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function summarize(path: string, top: number, callersOf: string | undefined, depth: number): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Each sample weighs the time until the next one (µs): the sampling interval stretches when
  // the thread is descheduled, and a count of samples would not show it.
  const hits = new Map<number, number>();
  for (const [i, id] of profile.samples.entries()) {
    hits.set(id, (hits.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }

  let total = 0;
  for (const n of hits.values()) total += n;
  let idle = 0;
  const selfByFunction = new Map<string, number>();
  const selfByFile = new Map<string, number>();
  const selfByPackage = new Map<string, number>();
  const inclusiveByPackage = new Map<string, number>();
  const callers = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
  for (const [id, n] of hits) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += n;
      continue;
    }
    const name = functionName || '(anonymous)';
    add(selfByFunction, url ? `${name} ${fileOf(url)}:${lineNumber + 1}` : name, n);
    add(selfByFile, url ? fileOf(url) : name, n);
    add(selfByPackage, url ? packageOf(url) : name, n);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (frame.url) seen.add(packageOf(frame.url));
    }
    for (const key of seen) add(inclusiveByPackage, key, n);
    if (callersOf !== undefined && functionName === callersOf) {
      const chain: string[] = [];
      for (let at = parent.get(id); at !== undefined && chain.length < depth; at = parent.get(at)) {
        const frame = byId.get(at)!.callFrame;
        chain.push(
          `${frame.functionName || '(anonymous)'}${frame.url ? ` ${fileOf(frame.url)}:${frame.lineNumber + 1}` : ''}`,
        );
      }
      add(callers, chain.join(' < '), n);
    }
  }
  const busy = total - idle;
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  if (busy <= 0) return `${path}: ${seconds.toFixed(1)} s, nothing but idle samples`;
  const table = (title: string, map: Map<string, number>) =>
    [
      `\n${title}`,
      ...[...map]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([key, n]) => `  ${((100 * n) / busy).toFixed(1).padStart(5)} %  ${key}`),
    ].join('\n');
  return [
    `${path}: ${seconds.toFixed(1)} s, ${profile.samples.length} samples, busy ${((100 * busy) / total).toFixed(1)} % (${(busy / 1e6).toFixed(2)} s)`,
    table('self time by function', selfByFunction),
    table('self time by file', selfByFile),
    table('self time by package', selfByPackage),
    table('inclusive time by package (a sample counts once per package on its stack)', inclusiveByPackage),
    ...(callersOf === undefined ? [] : [table(`self time of ${callersOf}, by its callers`, callers)]),
  ].join('\n');
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '30' },
    callers: { type: 'string' },
    depth: { type: 'string', default: '3' },
  },
});
if (positionals.length === 0) {
  console.error(
    'usage: node bench/profile-summary.ts FILE.cpuprofile... [--top N] [--callers NAME [--depth N]]',
  );
  process.exit(2);
}
const top = Number(values.top);
if (!Number.isInteger(top) || top < 1) {
  console.error(`--top: expected a whole number of rows, got ${JSON.stringify(values.top)}`);
  process.exit(2);
}
const depth = Number(values.depth);
if (!Number.isInteger(depth) || depth < 1) {
  console.error(`--depth: expected a whole number of frames, got ${JSON.stringify(values.depth)}`);
  process.exit(2);
}
for (const path of positionals) console.log(`${summarize(path, top, values.callers, depth)}\n`);
