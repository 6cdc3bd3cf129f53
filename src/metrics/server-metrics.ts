import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Job, JobStatus } from '../core/job.ts';
import { JOB_STATUSES } from '../core/job.ts';
import type { EngineEvents } from '../engine/engine-events.ts';
import type { DrainState } from '../engine/job-engine.ts';
import type { QueueState } from '../store/job-store.ts';
import type { DeliveryRecord } from '../store/webhook-store.ts';

/** What the metrics read of the engine: its events, its spawner and this node's load. */
export interface MetricsEngine {
  on<E extends keyof EngineEvents>(event: E, listener: (...args: EngineEvents[E]) => void): unknown;
  readonly spawner: { readonly running: boolean; readonly launches: number };
  readonly drainState: DrainState;
  queues(): Promise<QueueState[]>;
}

/** Where the metrics come from; each is read at scrape time (or counted from events). */
export interface MetricsSources {
  readonly engine: MetricsEngine;
  /** Jobs per status, kept by the store (no count over the table per scrape). */
  readonly countJobsByStatus: () => Promise<Partial<Record<JobStatus, number>>>;
  /** Output streams open now. */
  readonly followers: () => number;
  /** Webhook attempts, to count (absent: no webhook metrics). */
  readonly onDeliveryAttempt?: (listener: (delivery: DeliveryRecord) => void) => void;
}

/** Seconds buckets for start latency and request durations: 1 ms to 1 min. */
const FAST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds buckets for run durations: 10 ms to a day. */
const RUN_BUCKETS = [0.01, 0.1, 1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86_400];

/**
 * The server's Prometheus metrics (docs/metrics.md lists every one), in a registry of its own so
 * that several servers in one process (tests) do not share counters. Counters and histograms are
 * fed by the engine's lifecycle events and the HTTP hook; gauges are read when scraped, each from
 * something cheap: the store's kept counts, the queues, in-memory sizes.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly #requests: Histogram<'transport' | 'method' | 'route' | 'status'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    let storeUp = 1;
    new Gauge({
      name: 'jobworker_jobs',
      help: 'Jobs on record, by status (every node of the store).',
      labelNames: ['status'],
      registers,
      async collect() {
        try {
          const counts = await sources.countJobsByStatus();
          for (const status of JOB_STATUSES) this.set({ status }, counts[status] ?? 0);
          storeUp = 1;
        } catch {
          storeUp = 0;
        }
      },
    });
    new Gauge({
      name: 'jobworker_store_up',
      help: '1 when the store answered the last scrape, 0 when it failed.',
      registers,
      collect() {
        this.set(storeUp);
      },
    });
    const queueWaiting = new Gauge({
      name: 'jobworker_queue_waiting',
      help: 'Queued jobs per queue.',
      labelNames: ['queue'],
      registers,
    });
    new Gauge({
      name: 'jobworker_queue_running',
      help: 'Jobs holding a slot per queue: running, paused or being started.',
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        queueWaiting.reset();
        for (const q of await sources.engine.queues()) {
          this.set({ queue: q.name }, q.running);
          queueWaiting.set({ queue: q.name }, q.waiting);
        }
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

    const started = new Counter({
      name: 'jobworker_jobs_started_total',
      help: 'Jobs started by this node, by queue.',
      labelNames: ['queue'],
      registers,
    });
    const finished = new Counter({
      name: 'jobworker_jobs_finished_total',
      help: 'Jobs that reached a final status on this node, by queue and status.',
      labelNames: ['queue', 'status'],
      registers,
    });
    const startLatency = new Histogram({
      name: 'jobworker_job_start_latency_seconds',
      help: 'From admission (createdAt) to running (startedAt), by queue.',
      labelNames: ['queue'],
      buckets: FAST_BUCKETS,
      registers,
    });
    const runDuration = new Histogram({
      name: 'jobworker_job_run_duration_seconds',
      help: 'From running (startedAt) to a final status (finishedAt), by queue and status.',
      labelNames: ['queue', 'status'],
      buckets: RUN_BUCKETS,
      registers,
    });
    const outputBytes = new Counter({
      name: 'jobworker_output_bytes_total',
      help: 'Output bytes written by jobs that finished on this node, by stream.',
      labelNames: ['stream'],
      registers,
    });
    const engineErrors = new Counter({
      name: 'jobworker_engine_errors_total',
      help: 'Background failures of the engine (a job end that could not be recorded, ...).',
      registers,
    });
    sources.engine.on('job:started', (job: Job) => {
      started.inc({ queue: job.spec.queue });
      if (job.startedAt) {
        startLatency.observe(
          { queue: job.spec.queue },
          Math.max(0, job.startedAt.getTime() - job.createdAt.getTime()) / 1000,
        );
      }
    });
    sources.engine.on('job:finished', (job: Job) => {
      finished.inc({ queue: job.spec.queue, status: job.status });
      if (job.startedAt && job.finishedAt) {
        runDuration.observe(
          { queue: job.spec.queue, status: job.status },
          Math.max(0, job.finishedAt.getTime() - job.startedAt.getTime()) / 1000,
        );
      }
      outputBytes.inc({ stream: 'stdout' }, job.outputBytes.stdout);
      outputBytes.inc({ stream: 'stderr' }, job.outputBytes.stderr);
    });
    sources.engine.on('engine:error', () => engineErrors.inc());

    if (sources.onDeliveryAttempt) {
      const attempts = new Counter({
        name: 'jobworker_webhook_attempts_total',
        help: 'Webhook delivery attempts, by event and result (delivered, retry, failed).',
        labelNames: ['event', 'result'],
        registers,
      });
      sources.onDeliveryAttempt((d) => {
        attempts.inc({ event: d.event, result: d.status === 'pending' ? 'retry' : d.status });
      });
    }

    this.#requests = new Histogram({
      name: 'jobworker_http_request_duration_seconds',
      help: 'HTTP and RPC requests by transport (rest, rpc), method, route pattern and status.',
      labelNames: ['transport', 'method', 'route', 'status'],
      buckets: FAST_BUCKETS,
      registers,
    });
  }

  /**
   * Counts one answered request. `route` is the route's pattern (`/v1/jobs/:id`), never the URL,
   * so the label set stays bounded; requests that matched no route are `(unmatched)`.
   */
  observeRequest(method: string, route: string | undefined, status: number, seconds: number): void {
    const pattern = route ?? '(unmatched)';
    const transport = pattern.startsWith('/jobworker.') ? 'rpc' : 'rest';
    this.#requests.observe({ transport, method, route: pattern, status: String(status) }, seconds);
  }

  /** The text exposition format, and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
