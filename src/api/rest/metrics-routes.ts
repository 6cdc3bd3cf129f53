import type { FastifyInstance } from 'fastify';
import type { ServerMetrics } from '../../metrics/server-metrics.ts';
import { requireAdmin } from '../../service/require-admin.ts';
import { isMetricsScrape, principalOf } from './authentication.ts';
import { addRouteHook } from './route-hooks.ts';
import { METRICS_OPENAPI_RESPONSE, METRICS_SCHEMA } from './webhook-schemas.ts';

/**
 * `GET /metrics` (docs/metrics.md): admins, or the dedicated metrics token. Every answered request
 * is counted by its route pattern (a hook on every route, RPC routes included, made as each is
 * registered: so this goes before the routes).
 */
export function registerMetricsRoutes(app: FastifyInstance, metrics: ServerMetrics): void {
  // Each route counts its own requests (its hook knows its pattern), the requests no route
  // matched are `(unmatched)`.
  addRouteHook(app, 'onResponse', (route) => {
    const count = metrics.requestsOf(route?.url);
    return function countRequest(request, reply, done) {
      count(request.method, reply.statusCode, reply.elapsedTime / 1000);
      done();
    };
  });
  app.get(
    '/metrics',
    { schema: METRICS_SCHEMA, config: { metricsToken: true, openapi: METRICS_OPENAPI_RESPONSE } },
    async (request, reply) => {
      if (!isMetricsScrape(request)) requireAdmin(principalOf(request), 'read the metrics');
      const { contentType, body } = await metrics.scrape();
      return reply.type(contentType).send(body);
    },
  );
}
