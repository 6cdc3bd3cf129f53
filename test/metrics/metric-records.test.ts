import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, type Metric, Registry } from 'prom-client';
import { CounterRecord, HistogramRecord, type MetricRecord } from '../../src/metrics/metric-records.ts';

/** The exposition of one metric alone in a registry. */
async function exposition(metric: Metric | MetricRecord): Promise<string> {
  const registry = new Registry();
  registry.registerMetric(metric as Metric);
  return registry.metrics();
}

const BUCKETS = [0.001, 0.01, 0.1, 1];

/** A histogram record and prom-client's own histogram, both named `name`, labelled queue and status. */
function histogramPair(name: string) {
  const config = { name, help: 'H.', labelNames: ['queue', 'status'] as const, buckets: BUCKETS };
  return {
    record: new HistogramRecord<'queue' | 'status'>(config),
    histogram: new Histogram({ ...config, labelNames: [...config.labelNames], registers: [] }),
  };
}
/** Label values that need escaping, a value on a bound, one past the last bound, a zero. */
const OBSERVATIONS: ReadonlyArray<[Record<'queue' | 'status', string>, number]> = [
  [{ queue: 'default', status: 'succeeded' }, 0.01],
  [{ queue: 'q"uote\\back\nline', status: 'failed' }, 7.5],
  [{ queue: 'default', status: 'succeeded' }, 0.0004],
  [{ queue: 'default', status: 'failed' }, 0],
  [{ queue: 'default', status: 'succeeded' }, 2],
];

describe('metric records write what prom-client writes', () => {
  it('a counter with labels, in the order its label sets came', async () => {
    const record = new CounterRecord<'queue' | 'status'>({
      name: 'c_total',
      help: 'C.',
      labelNames: ['queue', 'status'],
    });
    const counter = new Counter({
      name: 'c_total',
      help: 'C.',
      labelNames: ['queue', 'status'],
      registers: [],
    });
    for (const [labels, value] of OBSERVATIONS) {
      record.inc(labels, value);
      counter.inc(labels, value);
    }
    record.inc({ queue: 'default', status: 'failed' });
    counter.inc({ queue: 'default', status: 'failed' });
    assert.equal(await exposition(record), await exposition(counter));
  });

  it('a counter without labels shows 0 before its first increment', async () => {
    const record = new CounterRecord({ name: 'e_total', help: 'E.' });
    const counter = new Counter({ name: 'e_total', help: 'E.', registers: [] });
    assert.equal(await exposition(record), await exposition(counter));
    record.inc({}, 2);
    counter.inc(2);
    assert.equal(await exposition(record), await exposition(counter));
  });

  it('a histogram with labels: cumulative buckets, +Inf, sum and count per label set', async () => {
    const { record, histogram } = histogramPair('h_seconds');
    for (const [labels, value] of OBSERVATIONS) {
      record.observe(labels, value);
      histogram.observe(labels, value);
    }
    const text = await exposition(record);
    assert.equal(text, await exposition(histogram));
    assert.match(text, /h_seconds_bucket\{le="\+Inf",queue="default",status="succeeded"\} 3/);
  });

  it('a histogram series kept by its caller counts as observe() does, and shows only once observed', async () => {
    const { record, histogram } = histogramPair('s_seconds');
    // Taken before any observation, as a route's counter is at registration.
    const unused = record.series({ queue: 'never', status: 'observed' });
    const kept = new Map<string, ReturnType<typeof record.series>>();
    for (const [labels, value] of OBSERVATIONS) {
      const key = `${labels.queue}/${labels.status}`;
      if (!kept.has(key)) kept.set(key, record.series(labels));
      kept.get(key)!.observe(value);
      histogram.observe(labels, value);
    }
    // A series and observe() with the same labels add to one label set.
    record.observe({ queue: 'default', status: 'failed' }, 0.5);
    histogram.observe({ queue: 'default', status: 'failed' }, 0.5);
    const text = await exposition(record);
    assert.equal(text, await exposition(histogram));
    assert.doesNotMatch(text, /never/);
    unused.observe(0.002);
    assert.match(await exposition(record), /s_seconds_count\{queue="never",status="observed"\} 1/);
  });

  it('a histogram without labels shows its empty buckets before the first observation', async () => {
    const record = new HistogramRecord({ name: 'g_seconds', help: 'G.', buckets: BUCKETS });
    const histogram = new Histogram({ name: 'g_seconds', help: 'G.', buckets: BUCKETS, registers: [] });
    assert.equal(await exposition(record), await exposition(histogram));
  });
});
