import type { WebhookEvent } from '../core/webhook.ts';
import { rowToJob } from './job-row.ts';
import type { JobRow, WebhookDeliveryRow, WebhookOutboxRow, WebhookRow } from './schema.ts';
import type { DeliveryRecord, OutboxEvent, WebhookRecord } from './webhook-store.ts';

/**
 * The mapping between webhooks, outbox events and deliveries and their rows, shared by the SQLite
 * and the PostgreSQL webhook stores (both keep the same columns: see store/schema.ts).
 */

export function webhookToRow(webhook: WebhookRecord): WebhookRow {
  return {
    id: webhook.id,
    url: webhook.url,
    events: JSON.stringify(webhook.events),
    secret: webhook.secret,
    created_at: webhook.createdAt.getTime(),
    created_by: webhook.createdBy,
  };
}

export function rowToWebhook(row: WebhookRow): WebhookRecord {
  return {
    id: row.id,
    url: row.url,
    events: JSON.parse(row.events) as WebhookEvent[],
    secret: row.secret,
    createdAt: new Date(row.created_at),
    createdBy: row.created_by,
  };
}

/**
 * An outbox row as an event. The snapshot may hold fewer columns than `jobs` has now (SQLite's
 * triggers list the columns jobs had when they were written), so the rest come from `current`,
 * the job's row as it is now (absent if it was deleted: then the mapping's defaults).
 */
export function rowToOutboxEvent(
  row: { seq: number } & Omit<WebhookOutboxRow, 'seq'>,
  current: JobRow | undefined,
): OutboxEvent {
  return {
    seq: row.seq,
    event: row.event as WebhookEvent,
    at: new Date(row.at),
    job: rowToJob({ ...current, ...(JSON.parse(row.snapshot) as JobRow) }),
  };
}

export function deliveryToRow(d: DeliveryRecord): WebhookDeliveryRow {
  return {
    id: d.id,
    event: d.event,
    job_id: d.jobId,
    owner: d.owner,
    webhook_id: d.webhookId,
    url: d.url,
    trusted: d.trusted ? 1 : 0,
    body: d.body,
    created_at: d.createdAt.getTime(),
    status: d.status,
    attempts: d.attempts,
    next_at: d.nextAt === null ? null : d.nextAt.getTime(),
    last_at: d.lastAt === null ? null : d.lastAt.getTime(),
    last_status: d.lastStatus,
    last_error: d.lastError,
    claimed_by: null,
  };
}

export function rowToDelivery(row: WebhookDeliveryRow): DeliveryRecord {
  return {
    id: row.id,
    event: row.event as WebhookEvent,
    jobId: row.job_id,
    owner: row.owner,
    webhookId: row.webhook_id,
    url: row.url,
    trusted: row.trusted === 1,
    body: row.body,
    createdAt: new Date(row.created_at),
    status: row.status,
    attempts: row.attempts,
    nextAt: row.next_at === null ? null : new Date(row.next_at),
    lastAt: row.last_at === null ? null : new Date(row.last_at),
    lastStatus: row.last_status,
    lastError: row.last_error,
  };
}
