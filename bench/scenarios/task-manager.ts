import { setTimeout as sleep } from 'node:timers/promises';
import { TaskManager } from '../../src/tasks/index.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { median } from '../lib/stats.ts';

const NAME = 'task-manager';
const POLL_INITIAL_MS = 100;
const POLL_MAX_MS = 2000;

export const taskManager: Scenario = {
  name: NAME,
  summary: '10,000 idle polling tasks: CPU and notice delay; 1,000 blocking 10 ms tasks on 2 threads',
  async run(options, emit) {
    await pollingIdle(options.full ? 50_000 : 10_000, emit);
    await blockingThroughput(options.full ? 3000 : 1000, emit);
  },
};

async function pollingIdle(count: number, emit: Parameters<Scenario['run']>[1]): Promise<void> {
  const tm = new TaskManager({
    concurrency: count,
    historySize: count,
    pollInitialMs: POLL_INITIAL_MS,
    pollMaxMs: POLL_MAX_MS,
  });
  const doneAt = new Float64Array(count).fill(Number.POSITIVE_INFINITY);
  const delays: number[] = [];
  const intervals: number[] = [];
  const index = new Map<string, number>();
  tm.on('task:succeed', (t) => {
    const i = index.get(t.id) as number;
    delays.push(performance.now() - (doneAt[i] as number));
  });
  for (let i = 0; i < count; i++) {
    const id = tm.submitPolling({
      run() {},
      poll: () => (performance.now() >= (doneAt[i] as number) ? { done: true, value: i } : { done: false }),
    });
    index.set(id, i);
  }
  // Let the intervals back off to the cap (100 + 200 + ... + 1600 ms), then measure idle cost.
  await sleep(3500);
  const idleSeconds = 4;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  await sleep(idleSeconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  const share = (cpu.user + cpu.system) / 1000 / (performance.now() - wall0);
  emit(
    row({
      scenario: NAME,
      metric: `${fmt.count(count)} idle polling tasks: manager CPU (polled every ${POLL_MAX_MS} ms)`,
      value: share,
      format: (v) => `${(v * 100).toFixed(2)}% of a core`,
      budget: { text: '< 2% of a core', pass: share < 0.02 },
    }),
  );
  // Each task becomes done at a random moment in the next few seconds; measure how late it is seen.
  const start = performance.now();
  for (let i = 0; i < count; i++) doneAt[i] = start + Math.random() * 3000;
  for (const t of tm.list({ status: 'running' })) intervals.push(t.pollIntervalMs ?? 0);
  await Promise.all([...index.keys()].map((id) => tm.wait(id)));
  const delay = median(delays);
  const interval = median(intervals);
  emit(
    row({
      scenario: NAME,
      metric: 'median delay from done to noticed',
      value: delay,
      format: fmt.ms,
      budget: { text: `<= the poll interval (${interval} ms)`, pass: delay <= interval },
    }),
  );
  await tm.close();
}

async function blockingThroughput(count: number, emit: Parameters<Scenario['run']>[1]): Promise<void> {
  const threads = 2;
  const taskMs = 10;
  const tm = new TaskManager({ concurrency: count, historySize: count, threads });
  const module = new URL('../fixtures/sleep-task.ts', import.meta.url);
  // Warm the pool (threads started, module loaded) so the figure is the steady state.
  await Promise.all([0, 1].map(() => tm.wait(tm.submitBlocking(module, 'sleepSync', 0))));
  const t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(tm.submitBlocking(module, 'sleepSync', taskMs));
  const done = await Promise.all(ids.map((id) => tm.wait(id)));
  const seconds = (performance.now() - t0) / 1000;
  await tm.close();
  if (done.some((t) => t.status !== 'succeeded')) throw new Error('a blocking task did not succeed');
  const ideal = (count * taskMs) / threads / 1000;
  emit(
    row({
      scenario: NAME,
      metric: `${fmt.count(count)} blocking tasks of ${taskMs} ms on ${threads} threads`,
      value: seconds,
      format: fmt.s,
      baseline: { name: 'ideal', value: ideal },
      budget: { text: '<= 1.2x ideal', pass: seconds <= ideal * 1.2 },
    }),
  );
}
