/**
 * `npm run bench [-- SCENARIO... ] [--full] [--log-level=LEVEL] [--list]`
 *
 * Runs the named scenarios (all of them, in this order, when none is named). Each prints its
 * figures beside its baseline's, the ratio, and PASS or MISS against its budget; a Markdown table
 * of every row closes the run. Exit status: 0 when every scenario ran (budget misses included),
 * 1 when one failed to run, 2 for bad arguments.
 */
import { fileURLToPath } from 'node:url';
import { staleInput } from '../src/cli/stale-bundle.ts';
import { LOG_LEVELS } from '../src/config.ts';
import { runCommand } from './lib/node-script.ts';
import { markdownTable, printRow, type Row, skipped } from './lib/report.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { awaitFreedInodes, removeScratchDirs } from './lib/scratch-dirs.ts';
import { apiGet } from './scenarios/api-get.ts';
import { busyJobs } from './scenarios/busy-jobs.ts';
import { catchUpRead } from './scenarios/catch-up-read.ts';
import { cliLatency } from './scenarios/cli-latency.ts';
import { cluster } from './scenarios/cluster.ts';
import { fanOut } from './scenarios/fan-out.ts';
import { followLatency } from './scenarios/follow-latency.ts';
import { followerChurn } from './scenarios/follower-churn.ts';
import { history } from './scenarios/history.ts';
import { historyPostgres } from './scenarios/history-postgres.ts';
import { idleMemory } from './scenarios/idle-memory.ts';
import { memoryPerJob } from './scenarios/memory-per-job.ts';
import { outputCapture } from './scenarios/output-capture.ts';
import { queueBacklog } from './scenarios/queue-backlog.ts';
import { runLatency } from './scenarios/run-latency.ts';
import { startRate } from './scenarios/start-rate.ts';
import { storeCheckpoints } from './scenarios/store-checkpoints.ts';
import { taskManager } from './scenarios/task-manager.ts';

const SCENARIOS: readonly Scenario[] = [
  startRate,
  outputCapture,
  runLatency,
  catchUpRead,
  followLatency,
  fanOut,
  followerChurn,
  memoryPerJob,
  apiGet,
  busyJobs,
  history,
  historyPostgres,
  storeCheckpoints,
  queueBacklog,
  cliLatency,
  idleMemory,
  taskManager,
  cluster,
];

function usage(): string {
  const names = SCENARIOS.map((s) => `  ${s.name.padEnd(16)} ${s.summary}`).join('\n');
  return `usage: npm run bench -- [SCENARIO...] [--full] [--log-level=LEVEL] [--list]\n\nscenarios:\n${names}`;
}

function parseArgs(argv: readonly string[]): { options: BenchOptions; chosen: Scenario[] } | string {
  let full = false;
  let logLevel = 'info';
  const chosen: Scenario[] = [];
  for (const arg of argv) {
    if (arg === '--full') full = true;
    else if (arg.startsWith('--log-level=')) {
      logLevel = arg.slice('--log-level='.length);
      if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
        return `Expected --log-level to be one of ${LOG_LEVELS.join(', ')}, got \`${logLevel}\``;
      }
    } else if (arg === '--list' || arg === '--help' || arg === '-h') return usage();
    else {
      const scenario = SCENARIOS.find((s) => s.name === arg);
      if (!scenario) return `Unknown scenario \`${arg}\`\n\n${usage()}`;
      chosen.push(scenario);
    }
  }
  return { options: { full, logLevel }, chosen: chosen.length > 0 ? chosen : [...SCENARIOS] };
}

const parsed = parseArgs(process.argv.slice(2));
if (typeof parsed === 'string') {
  const help = parsed === usage();
  (help ? console.log : console.error)(parsed);
  process.exit(help ? 0 : 2);
}

const { options, chosen } = parsed;
const rows: Row[] = [];
let failed = false;
console.log(
  `jobworker bench: ${chosen.map((s) => s.name).join(', ')} (${options.full ? 'full' : 'default'} sizes, ` +
    `server log level ${options.logLevel}, node ${process.version})`,
);
// Scenarios that start `bin/jobworker` (idle-memory, cli-latency, the CLI's catch-up) measure
// what a user runs: the build in dist/. A stale build would make the launcher run the TypeScript
// sources instead (slower to start, ~30 MB more resident), so bring it up to date first (a no-op
// when it is current).
await runCommand('bash', [new URL('../scripts/build.sh', import.meta.url).pathname]);
/** The repository, whose build the run measures. */
const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
await awaitFreedInodes((line) => console.log(line));
for (const scenario of chosen) {
  console.log(`\n== ${scenario.name}: ${scenario.summary}`);
  const started = performance.now();
  try {
    await scenario.run(options, (r) => {
      rows.push(r);
      printRow(r);
    });
  } catch (err) {
    failed = true;
    console.error(`  ${scenario.name} failed:`, err);
    rows.push(skipped(scenario.name, 'run', `failed: ${(err as Error).message}`));
  }
  console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  // A source edited during the run makes what the bench starts through bin/jobworker run from the
  // TypeScript sources, not the build: its figures would not be the build's. Stop there.
  const changed = staleInput(ROOT, ['jobworker-cli', 'jobworker-serve']);
  if (changed !== undefined) {
    failed = true;
    console.error(
      `\n  the build went stale during ${scenario.name} (${changed} changed): what this run starts ` +
        'through bin/jobworker from now on would run from the TypeScript sources; the run stops here ' +
        '(rows of this scenario may be from the sources too)',
    );
    break;
  }
}
console.log(`\n${markdownTable(rows)}`);
const misses = rows.filter((r) => r.verdict === 'MISS').length;
console.log(`\n${rows.filter((r) => r.verdict === 'PASS').length} PASS, ${misses} MISS`);
await removeScratchDirs().catch((err: unknown) => {
  console.error('removing the bench directories failed:', err);
});
process.exit(failed ? 1 : 0);
