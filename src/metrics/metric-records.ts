/**
 * Counters and histograms that count from the server's start without prom-client, which the server
 * loads only at the first scrape (it costs ~20 MB of RSS in an idle server: 85 more built-in
 * modules, `cluster` among them). At that scrape they are registered in prom-client's registry
 * as they are: `get()` answers in the shape of prom-client's own `Counter` and `Histogram`, so the
 * registry writes the same exposition (test/metrics/metric-records.test.ts compares the two).
 * Label sets are kept in the order first seen, as prom-client keeps them.
 */

/** One sample in prom-client's `MetricObjectWithValues` shape. */
export interface RecordSample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

/** A metric's samples, as prom-client's `get()` answers. */
export interface RecordData {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly values: RecordSample[];
  readonly aggregator: 'sum';
}

/** What prom-client's registry reads of a metric (`Registry.registerMetric`). */
export interface MetricRecord {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<RecordData>;
}

interface RecordConfig<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

/** The key of one label set: its values in the order of `labelNames`. */
function keyOf<L extends string>(labelNames: readonly L[], labels: Record<L, string>): string {
  return labelNames.map((name) => labels[name]).join('\u0000');
}

/** The label set as the caller gave it, with its names in the order of `labelNames`. */
function copyOf<L extends string>(
  labelNames: readonly L[],
  labels: Record<L, string>,
): Record<string, string> {
  const copy: Record<string, string> = {};
  for (const name of labelNames) copy[name] = labels[name];
  return copy;
}

export class CounterRecord<L extends string = never> implements MetricRecord {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  readonly #labelNames: readonly L[];
  readonly #series = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(config: RecordConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = config.labelNames ?? [];
    // prom-client shows a counter without labels as 0 before its first increment.
    if (this.#labelNames.length === 0) this.#series.set('', { labels: {}, value: 0 });
  }

  inc(labels: Record<L, string>, by = 1): void {
    const key = keyOf(this.#labelNames, labels);
    const series = this.#series.get(key);
    if (series) series.value += by;
    else this.#series.set(key, { labels: copyOf(this.#labelNames, labels), value: by });
  }

  /** Drops every series whose `label` is `value` (prom-client's `remove`, for one label). */
  removeWhere(label: L, value: string): void {
    for (const [key, series] of this.#series) if (series.labels[label] === value) this.#series.delete(key);
  }

  async get(): Promise<RecordData> {
    const values = [...this.#series.values()].map(({ labels, value }) => ({ labels, value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

/** One label set of a histogram: what a caller that observes it often keeps, to skip the lookup. */
export interface HistogramSeries {
  observe(value: number): void;
}

interface SeriesData {
  readonly labels: Record<string, string>;
  /** The count of each bucket (not cumulative). */
  readonly counts: number[];
  sum: number;
  count: number;
}

export class HistogramRecord<L extends string = never> implements MetricRecord {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #labelNames: readonly L[];
  readonly #buckets: readonly number[];
  readonly #series = new Map<string, SeriesData>();

  constructor(config: RecordConfig<L> & { readonly buckets: readonly number[] }) {
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = config.labelNames ?? [];
    this.#buckets = config.buckets;
    if (this.#labelNames.length === 0) this.#series.set('', this.#empty({}));
  }

  observe(labels: Record<L, string>, value: number): void {
    this.#add(this.#seriesData(labels), value);
  }

  /**
   * Drops every series whose `label` is `value` (prom-client's `remove`, for one label). Not for a
   * series a caller keeps (`series`): its next observations would go to a series no longer shown.
   */
  removeWhere(label: L, value: string): void {
    for (const [key, series] of this.#series) if (series.labels[label] === value) this.#series.delete(key);
  }

  /**
   * The series of one label set. It shows in the exposition from its first observation on, as
   * prom-client's own does, not from this call.
   */
  series(labels: Record<L, string>): HistogramSeries {
    let data: SeriesData | undefined;
    return {
      observe: (value) => {
        data ??= this.#seriesData(labels);
        this.#add(data, value);
      },
    };
  }

  #seriesData(labels: Record<L, string>): SeriesData {
    const key = keyOf(this.#labelNames, labels);
    let series = this.#series.get(key);
    if (!series) {
      series = this.#empty(copyOf(this.#labelNames, labels));
      this.#series.set(key, series);
    }
    return series;
  }

  #add(series: SeriesData, value: number): void {
    series.sum += value;
    series.count += 1;
    // Past the last bound: only in +Inf, which is the count.
    const buckets = this.#buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]!) {
        series.counts[i]! += 1;
        return;
      }
    }
  }

  async get(): Promise<RecordData> {
    const values: RecordSample[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const { labels, counts, sum, count } of this.#series.values()) {
      let cumulative = 0;
      this.#buckets.forEach((le, i) => {
        cumulative += counts[i]!;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: bucketName });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: bucketName });
      values.push({ labels: { ...labels }, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...labels }, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  #empty(labels: Record<string, string>): SeriesData {
    return { labels, counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
  }
}
