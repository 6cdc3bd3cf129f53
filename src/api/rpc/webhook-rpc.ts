import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import type { WebhookService as Webhooks, WebhookView } from '../../service/webhook-service.ts';
import type { DeliveryRecord } from '../../store/webhook-store.ts';
import type { WebhookService } from './gen/jobworker/v1/webhook_service_pb.ts';
import { callerOf } from './rpc-authentication.ts';
import { pageTokenError } from './rpc-mapping.ts';

/** jobworker.v1.WebhookService: the same service and checks as `/v1/webhooks` (docs/webhooks.md). */
export function webhookRpc(webhooks: Webhooks): ServiceImpl<typeof WebhookService> {
  return {
    async addWebhook(req, ctx) {
      const created = await webhooks.add(callerOf(ctx), {
        url: req.url,
        ...(req.events.length > 0 ? { events: req.events } : {}),
        ...(req.secret === undefined ? {} : { secret: req.secret }),
      });
      return { webhook: webhookToProto(created.webhook), secret: created.secret };
    },
    async listWebhooks(_req, ctx) {
      return { webhooks: (await webhooks.list(callerOf(ctx))).map(webhookToProto) };
    },
    async removeWebhook(req, ctx) {
      return { webhook: webhookToProto(await webhooks.remove(callerOf(ctx), req.id)) };
    },
    async listDeliveries(req, ctx) {
      const page = await webhooks
        .deliveries(callerOf(ctx), {
          ...(req.jobId === undefined ? {} : { jobId: req.jobId }),
          ...(req.webhookId === undefined ? {} : { webhookId: req.webhookId }),
          ...(req.status === undefined ? {} : { status: req.status }),
          ...(req.pageSize === undefined ? {} : { limit: req.pageSize }),
          ...(req.pageToken === undefined || req.pageToken === '' ? {} : { cursor: req.pageToken }),
        })
        .catch(pageTokenError);
      return { deliveries: page.deliveries.map(deliveryToProto), nextPageToken: page.nextCursor ?? '' };
    },
  };
}

function webhookToProto(w: WebhookView) {
  return {
    id: w.id,
    url: w.url,
    events: [...w.events],
    createTime: timestampFromDate(w.createdAt),
    createdBy: w.createdBy,
  };
}

function deliveryToProto(d: DeliveryRecord) {
  return {
    id: d.id,
    event: d.event,
    jobId: d.jobId,
    ...(d.webhookId === null ? {} : { webhookId: d.webhookId }),
    url: d.url,
    status: d.status,
    attempts: d.attempts,
    createTime: timestampFromDate(d.createdAt),
    ...(d.nextAt ? { nextAttemptTime: timestampFromDate(d.nextAt) } : {}),
    ...(d.lastAt ? { lastAttemptTime: timestampFromDate(d.lastAt) } : {}),
    ...(d.lastStatus === null ? {} : { lastStatus: d.lastStatus }),
    ...(d.lastError === null ? {} : { lastError: d.lastError }),
  };
}
