import type { Job, JobStatus } from '../core/job.ts';
import { loadOnce } from '../core/load-once.ts';
import type { EngineEvents } from '../engine/engine-events.ts';
import type { DrainState } from '../engine/job-engine.ts';
import type { QueueState } from '../store/job-store.ts';
import type { DeliveryRecord } from '../store/webhook-store.ts';
import { CounterRecord, HistogramRecord, type HistogramSeries, type MetricRecord } from './metric-records.ts';
import { ProcessWatch } from './process-watch.ts';
import type { StoreReading } from './prometheus-registry.ts';

/** Counts one answered request of a route: its method, status and duration in seconds. */
export type RequestCounter = (method: string, status: number, seconds: number) => void;

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
 * fed by the engine's lifecycle events and the HTTP hook from the start; gauges are read when
 * scraped, each from something cheap: the store's kept counts, the queues, in-memory sizes.
 * prom-client, and the registry that writes the exposition, are loaded at the first scrape: a
 * server nobody scrapes never pays for them (src/metrics/metric-records.ts).
 */
export class ServerMetrics {
  readonly #sources: MetricsSources;
  readonly #watch = new ProcessWatch();
  readonly #records: MetricRecord[] = [];
  readonly #requests: HistogramRecord<'transport' | 'method' | 'route' | 'status'>;
  /** Tried again by the next scrape when it fails, instead of failing every scrape until a restart. */
  readonly #registry = loadOnce(() =>
    import('./prometheus-registry.ts').then(({ buildRegistry }) =>
      buildRegistry({
        sources: this.#sources,
        watch: this.#watch,
        records: this.#records,
        store: () => this.#storeReading,
      }),
    ),
  );
  /** The records labelled by queue: a forgotten queue's series go from each. */
  readonly #byQueue: { removeWhere(label: 'queue', value: string): void }[] = [];
  /**
   * Each queue these records hold series of, with the scrape (`#scrapes`) during or after which
   * it was last counted. Bounded by the queues that exist (docs/metrics.md, "Series per queue").
   */
  readonly #queuesCounted = new Map<string, number>();
  /** Scrapes begun: a count after a scrape read the queues is not dropped by that scrape. */
  #scrapes = 0;
  /** What the latest scrape read of the store, for its gauges. */
  #storeReading: StoreReading = { counts: undefined, queues: undefined };

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    const started = this.#record(
      new CounterRecord<'queue'>({
        name: 'jobworker_jobs_started_total',
        help: 'Jobs started by this node, by queue.',
        labelNames: ['queue'],
      }),
    );
    const finished = this.#record(
      new CounterRecord<'queue' | 'status'>({
        name: 'jobworker_jobs_finished_total',
        help: 'Jobs that reached a final status on this node, by queue and status.',
        labelNames: ['queue', 'status'],
      }),
    );
    const startLatency = this.#record(
      new HistogramRecord<'queue'>({
        name: 'jobworker_job_start_latency_seconds',
        help: 'From admission (createdAt) to running (startedAt), by queue.',
        labelNames: ['queue'],
        buckets: FAST_BUCKETS,
      }),
    );
    const runDuration = this.#record(
      new HistogramRecord<'queue' | 'status'>({
        name: 'jobworker_job_run_duration_seconds',
        help: 'From running (startedAt) to a final status (finishedAt), by queue and status.',
        labelNames: ['queue', 'status'],
        buckets: RUN_BUCKETS,
      }),
    );
    const outputBytes = this.#record(
      new CounterRecord<'stream'>({
        name: 'jobworker_output_bytes_total',
        help: 'Output bytes written by jobs that finished on this node, by stream.',
        labelNames: ['stream'],
      }),
    );
    const engineErrors = this.#record(
      new CounterRecord({
        name: 'jobworker_engine_errors_total',
        help: 'Background failures of the engine (a job end that could not be recorded, ...).',
      }),
    );
    this.#byQueue.push(started, finished, startLatency, runDuration);
    sources.engine.on('job:started', (job: Job) => {
      this.#counted(job.spec.queue);
      started.inc({ queue: job.spec.queue });
      if (job.startedAt) {
        startLatency.observe(
          { queue: job.spec.queue },
          Math.max(0, job.startedAt.getTime() - job.createdAt.getTime()) / 1000,
        );
      }
    });
    sources.engine.on('job:finished', (job: Job) => {
      this.#counted(job.spec.queue);
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
    sources.engine.on('engine:error', () => engineErrors.inc({}));
    // A queue is forgotten once it has no job left (and no settings): its series go with it, so
    // that they number with the queues that exist, not with every name ever used.
    sources.engine.on('queue:forgotten', (names: readonly string[]) => {
      for (const name of names) this.#drop(name);
    });

    if (sources.onDeliveryAttempt) {
      const attempts = this.#record(
        new CounterRecord<'event' | 'result'>({
          name: 'jobworker_webhook_attempts_total',
          help: 'Webhook delivery attempts, by event and result (delivered, retry, failed).',
          labelNames: ['event', 'result'],
        }),
      );
      sources.onDeliveryAttempt((d) => {
        attempts.inc({ event: d.event, result: d.status === 'pending' ? 'retry' : d.status });
      });
    }

    this.#requests = this.#record(
      new HistogramRecord<'transport' | 'method' | 'route' | 'status'>({
        name: 'jobworker_http_request_duration_seconds',
        help: 'HTTP and RPC requests by transport (rest, rpc), method, route pattern and status.',
        labelNames: ['transport', 'method', 'route', 'status'],
        buckets: FAST_BUCKETS,
      }),
    );
  }

  /**
   * What counts the answered requests of one route, made once per route when it is registered.
   * `route` is the route's pattern (`/v1/jobs/:id`), never the URL, so the label set stays
   * bounded; requests that matched no route are `(unmatched)`. Each method and status keeps its
   * series, so that counting a request looks up no label set.
   */
  requestsOf(route: string | undefined): RequestCounter {
    const pattern = route ?? '(unmatched)';
    const transport = pattern.startsWith('/jobworker.') ? 'rpc' : 'rest';
    const byMethod = new Map<string, Map<number, HistogramSeries>>();
    return (method, status, seconds) => {
      let byStatus = byMethod.get(method);
      if (byStatus === undefined) {
        byStatus = new Map();
        byMethod.set(method, byStatus);
      }
      let series = byStatus.get(status);
      if (series === undefined) {
        series = this.#requests.series({ transport, method, route: pattern, status: String(status) });
        byStatus.set(status, series);
      }
      series.observe(seconds);
    };
  }

  /** The text exposition format, and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const registry = await this.#registry();
    // The store first, both reads at once: the registry writes every metric at once, and the
    // series of a queue the store no longer has must be gone before the counters are written.
    const [counts, queues] = await Promise.allSettled([
      this.#sources.countJobsByStatus(),
      this.#scrapeQueues(),
    ]);
    this.#storeReading = {
      counts: counts.status === 'fulfilled' ? counts.value : undefined,
      queues: queues.status === 'fulfilled' ? queues.value : undefined,
    };
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  /**
   * The queues for a scrape's gauges. The series of a queue the store no longer has go too: one
   * another node forgot (its deletion told only that node), or one whose `queue:forgotten` this
   * node missed. Not one counted since this scrape began: its job may be of a queue made after
   * the read.
   */
  async #scrapeQueues(): Promise<QueueState[]> {
    const scrape = ++this.#scrapes;
    const queues = await this.#sources.engine.queues();
    const names = new Set(queues.map((q) => q.name));
    for (const [queue, countedIn] of this.#queuesCounted) {
      if (countedIn < scrape && !names.has(queue)) this.#drop(queue);
    }
    return queues;
  }

  #counted(queue: string): void {
    this.#queuesCounted.set(queue, this.#scrapes);
  }

  #drop(queue: string): void {
    if (!this.#queuesCounted.delete(queue)) return;
    for (const record of this.#byQueue) record.removeWhere('queue', queue);
  }

  /** Stops watching the process (collections, event-loop delay); the counts stay readable. */
  close(): void {
    this.#watch.close();
  }

  #record<R extends MetricRecord>(record: R): R {
    this.#records.push(record);
    return record;
  }
}
