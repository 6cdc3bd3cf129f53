/**
 * prom-client's default collectors one by one (its package has no `exports` map, so Node resolves
 * these files directly): src/metrics/prometheus-registry.ts registers all but the three it keeps
 * itself, in the order of `collectDefaultMetrics`.
 */
declare module 'prom-client/lib/metrics/*.js' {
  import type { Registry } from 'prom-client';

  const collector: (registry: Registry, config: { eventLoopMonitoringPrecision?: number }) => void;
  export default collector;
}
