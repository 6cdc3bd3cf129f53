import { Counter, Gauge, type Metric, Registry } from 'prom-client';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';
import { JOB_STATUSES, type JobStatus } from '../core/job.ts';
import type { QueueState } from '../store/job-store.ts';
import type { MetricRecord } from './metric-records.ts';
import type { ProcessWatch } from './process-watch.ts';
import type { MetricsSources } from './server-metrics.ts';

/**
 * What one scrape read of the store: each part absent when its read failed. Read before the
 * registry writes anything, so that every gauge of a scrape, `jobworker_store_up` included, tells
 * of the same reads, and a store that does not answer fails no scrape: the process's metrics and
 * the counters still come out, with `jobworker_store_up` 0 and no series of what was not read.
 */
export interface StoreReading {
  readonly counts: Partial<Record<JobStatus, number>> | undefined;
  readonly queues: readonly QueueState[] | undefined;
}

/**
 * The Prometheus registry of a server, made at its first scrape: this module is what loads
 * prom-client. The exposition is what `collectDefaultMetrics` and the server's own metrics wrote
 * when they were registered at start, in the same order; what counts over time was counted from
 * the start by the records and the process watch (event-loop delay only from this first scrape
 * on: process-watch.ts), and is registered here as it is.
 */
export function buildRegistry(parts: {
  readonly sources: MetricsSources;
  readonly watch: ProcessWatch;
  /** The server's counters and histograms, in their order of the exposition. */
  readonly records: readonly MetricRecord[];
  /** What this scrape read of the store, before the registry writes (`ServerMetrics.scrape`). */
  readonly store: () => StoreReading;
}): Registry {
  const registry = new Registry();
  registerDefaultMetrics(registry, parts.watch);
  registerServerGauges(registry, parts.sources, parts.store);
  // The records answer `get()` as prom-client's Counter and Histogram do, which is all the registry reads.
  for (const record of parts.records) registry.registerMetric(record as unknown as Metric);
  return registry;
}

/**
 * prom-client's `collectDefaultMetrics`, collector by collector in its order, except three that
 * would count from now instead of from the process's start: CPU time (prom-client counts the
 * difference since its registration) and collection pauses (the process watch); event-loop delay
 * comes from the process watch too, which measures it from the first scrape on.
 */
function registerDefaultMetrics(registry: Registry, watch: ProcessWatch): void {
  const config = { eventLoopMonitoringPrecision: 10 };
  registerCpuTotal(registry);
  processStartTime(registry, config);
  osMemoryHeap(registry, config);
  processOpenFileDescriptors(registry, config);
  processMaxFileDescriptors(registry, config);
  registerEventLoopLag(registry, watch);
  processResources(registry, config);
  processHandles(registry, config);
  processRequests(registry, config);
  heapSizeAndUsed(registry, config);
  heapSpacesSizeAndUsed(registry, config);
  version(registry, config);
  registry.registerMetric(watch.gc as unknown as Metric);
}

/** prom-client's CPU counters, as totals since the process started. */
function registerCpuTotal(registry: Registry): void {
  const registers = [registry];
  const system = new Counter({
    name: 'process_cpu_system_seconds_total',
    help: 'Total system CPU time spent in seconds.',
    registers: [],
  });
  const both = new Counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registers: [],
  });
  new Counter({
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    registers,
    // One read sets all three, as in prom-client.
    collect() {
      const usage = process.cpuUsage();
      for (const [counter, micros] of [
        [this, usage.user],
        [system, usage.system],
        [both, usage.user + usage.system],
      ] as const) {
        counter.reset();
        counter.inc(micros / 1e6);
      }
    },
  });
  registry.registerMetric(system);
  registry.registerMetric(both);
}

/**
 * prom-client's event-loop lag gauges, read from the process watch's histogram, which measures
 * from the first scrape on: that scrape has no delay measured yet and says NaN (Prometheus's "no
 * value"), where an empty histogram would say a minimum of 9.2e9 s.
 */
function registerEventLoopLag(registry: Registry, watch: ProcessWatch): void {
  const registers = [registry];
  const delay = watch.watchDelay();
  const gauge = (name: string, help: string, aggregator: 'min' | 'max' | 'average') =>
    new Gauge({ name, help, registers, aggregator });
  const lag: Gauge = new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers,
    aggregator: 'average',
    collect() {
      // As in prom-client: the lag of one turn of the loop, which the next scrape shows.
      const start = process.hrtime.bigint();
      setImmediate(() => lag.set(Number(process.hrtime.bigint() - start) / 1e9));
      const measured = delay.count > 0;
      const seconds = (ns: number) => (measured ? ns / 1e9 : Number.NaN);
      min.set(seconds(delay.min));
      max.set(seconds(delay.max));
      mean.set(seconds(delay.mean));
      stddev.set(seconds(delay.stddev));
      p50.set(seconds(delay.percentile(50)));
      p90.set(seconds(delay.percentile(90)));
      p99.set(seconds(delay.percentile(99)));
      delay.reset();
    },
  });
  const min = gauge('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', 'min');
  const max = gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', 'max');
  const mean = gauge(
    'nodejs_eventloop_lag_mean_seconds',
    'The mean of the recorded event loop delays.',
    'average',
  );
  const stddev = gauge(
    'nodejs_eventloop_lag_stddev_seconds',
    'The standard deviation of the recorded event loop delays.',
    'average',
  );
  const p50 = gauge(
    'nodejs_eventloop_lag_p50_seconds',
    'The 50th percentile of the recorded event loop delays.',
    'average',
  );
  const p90 = gauge(
    'nodejs_eventloop_lag_p90_seconds',
    'The 90th percentile of the recorded event loop delays.',
    'average',
  );
  const p99 = gauge(
    'nodejs_eventloop_lag_p99_seconds',
    'The 99th percentile of the recorded event loop delays.',
    'average',
  );
}

/** The server's gauges (and one counter), each read at the scrape from something cheap. */
function registerServerGauges(registry: Registry, sources: MetricsSources, store: () => StoreReading): void {
  const registers = [registry];
  new Gauge({
    name: 'jobworker_jobs',
    help: 'Jobs on record, by status (every node of the store).',
    labelNames: ['status'],
    registers,
    collect() {
      // Reset first: counts the store did not give this time are not shown as if it had.
      this.reset();
      const { counts } = store();
      if (counts === undefined) return;
      for (const status of JOB_STATUSES) this.set({ status }, counts[status] ?? 0);
    },
  });
  new Gauge({
    name: 'jobworker_store_up',
    help: "1 when the store answered this scrape's reads, 0 when one failed.",
    registers,
    collect() {
      const { counts, queues } = store();
      this.set(counts !== undefined && queues !== undefined ? 1 : 0);
    },
  });
  // Reset first: a queue gone since the last scrape has no series left here either.
  const setQueues = (gauge: Gauge, value: (q: QueueState) => number) => {
    gauge.reset();
    for (const q of store().queues ?? []) gauge.set({ queue: q.name }, value(q));
  };
  new Gauge({
    name: 'jobworker_queue_waiting',
    help: 'Queued jobs per queue.',
    labelNames: ['queue'],
    registers,
    collect() {
      setQueues(this, (q) => q.waiting);
    },
  });
  new Gauge({
    name: 'jobworker_queue_running',
    help: 'Jobs holding a slot per queue: running, paused or being started.',
    labelNames: ['queue'],
    registers,
    collect() {
      setQueues(this, (q) => q.running);
    },
  });
  new Gauge({
    name: 'jobworker_node_running',
    help: 'Jobs this node runs now, all queues together.',
    registers,
    collect() {
      this.set(sources.engine.drainState.running);
    },
  });
  new Gauge({
    name: 'jobworker_node_draining',
    help: '1 while this node is drained (starts no new job).',
    registers,
    collect() {
      this.set(sources.engine.drainState.draining ? 1 : 0);
    },
  });
  new Gauge({
    name: 'jobworker_followers',
    help: 'Output streams (follows) open now.',
    registers,
    collect() {
      this.set(sources.followers());
    },
  });
  new Gauge({
    name: 'jobworker_spawner_running',
    help: '1 while the spawner process runs (it starts with the first job, and again after it died).',
    registers,
    collect() {
      this.set(sources.engine.spawner.running ? 1 : 0);
    },
  });
  new Counter({
    name: 'jobworker_spawner_starts_total',
    help: 'Spawner processes started; more than 1 means it died and was restarted.',
    registers,
    collect() {
      this.reset();
      this.inc(sources.engine.spawner.launches);
    },
  });
}
