import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { HistogramRecord } from './metric-records.ts';

/** prom-client's names of V8's collection kinds (`nodejs_gc_duration_seconds{kind}`). */
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/**
 * The two process metrics of prom-client's defaults that observe the process over time instead of
 * reading it at a scrape: collection pauses and event-loop delay. Pauses are watched from the
 * server's start (an observer costs nothing until a collection), so the first scrape, which loads
 * prom-client (src/metrics/prometheus-registry.ts), covers the time before it. Event-loop delay is
 * measured from the first scrape on (`watchDelay`): its measure is a timer every 10 ms, which woke
 * an idle server's main thread 98 times a second (about 1 % of a core) for a figure nobody read.
 */
export class ProcessWatch {
  /** `nodejs_gc_duration_seconds`, as prom-client's `collectDefaultMetrics` defines it. */
  readonly gc = new HistogramRecord<'kind'>({
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5],
  });
  /**
   * Event-loop delay since the last scrape, made by the first `watchDelay`: the histogram (HDR,
   * three significant figures) allocates 432 KiB of counters, of which an idle server that is
   * never scraped has no use (the idle RSS it saves is within the noise: 69.4-69.6 -> 69.2-69.5 MB).
   */
  #eventLoopDelay: ReturnType<typeof monitorEventLoopDelay> | undefined;
  readonly #observer: PerformanceObserver;
  #closed = false;

  constructor() {
    this.#observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const detail = (entry as { detail?: { kind?: number } }).detail;
        const kind = GC_KINDS[detail?.kind ?? -1] ?? 'unknown';
        this.gc.observe({ kind }, entry.duration / 1000);
      }
    });
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  /**
   * Starts measuring event-loop delay, at prom-client's 10 ms resolution (idempotent; not once
   * closed), and returns the histogram: the scrape reads it, then resets it. Called by the first
   * scrape.
   */
  watchDelay(): ReturnType<typeof monitorEventLoopDelay> {
    this.#eventLoopDelay ??= monitorEventLoopDelay({ resolution: 10 });
    if (!this.#closed) this.#eventLoopDelay.enable();
    return this.#eventLoopDelay;
  }

  close(): void {
    this.#closed = true;
    this.#eventLoopDelay?.disable();
    this.#observer.disconnect();
  }
}
