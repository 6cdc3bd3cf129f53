import type { FastifyInstance } from 'fastify';
import type { DeliveriesRequest, WebhookService, WebhookView } from '../../service/webhook-service.ts';
import type { DeliveryRecord } from '../../store/webhook-store.ts';
import { principalOf } from './authentication.ts';
import {
  ADD_WEBHOOK_SCHEMA,
  LIST_DELIVERIES_SCHEMA,
  LIST_WEBHOOKS_SCHEMA,
  REMOVE_WEBHOOK_SCHEMA,
} from './webhook-schemas.ts';

/** Server-wide webhooks (POST/GET /v1/webhooks, DELETE /v1/webhooks/:id) and their deliveries. */
export function registerWebhookRoutes(app: FastifyInstance, webhooks: WebhookService): void {
  app.post('/v1/webhooks', { schema: ADD_WEBHOOK_SCHEMA }, async (request, reply) => {
    const created = await webhooks.add(principalOf(request), (request.body ?? {}) as object);
    return reply.code(201).send({ webhook: webhookJson(created.webhook), secret: created.secret });
  });

  app.get('/v1/webhooks', { schema: LIST_WEBHOOKS_SCHEMA }, async (request) => ({
    webhooks: (await webhooks.list(principalOf(request))).map(webhookJson),
  }));

  app.delete('/v1/webhooks/:id', { schema: REMOVE_WEBHOOK_SCHEMA }, async (request) => {
    const { id } = request.params as { id: string };
    return webhookJson(await webhooks.remove(principalOf(request), id));
  });

  app.get('/v1/webhooks/deliveries', { schema: LIST_DELIVERIES_SCHEMA }, async (request) => {
    const page = await webhooks.deliveries(principalOf(request), request.query as DeliveriesRequest);
    return { deliveries: page.deliveries.map(deliveryJson), nextCursor: page.nextCursor };
  });
}

function webhookJson(w: WebhookView) {
  return {
    id: w.id,
    url: w.url,
    events: [...w.events],
    createdAt: w.createdAt.toISOString(),
    createdBy: w.createdBy,
  };
}

/** A delivery as the API shows it (never its body nor the secret that signed it). */
export function deliveryJson(d: DeliveryRecord) {
  return {
    id: d.id,
    event: d.event,
    jobId: d.jobId,
    webhookId: d.webhookId,
    url: d.url,
    status: d.status,
    attempts: d.attempts,
    createdAt: d.createdAt.toISOString(),
    nextAttemptAt: d.nextAt?.toISOString() ?? null,
    lastAttemptAt: d.lastAt?.toISOString() ?? null,
    lastStatus: d.lastStatus,
    lastError: d.lastError,
  };
}
