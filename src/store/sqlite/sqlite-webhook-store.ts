import type { Kysely } from 'kysely';
import type { Job, JobStatus } from '../../core/job.ts';
import type { WebhookEvent } from '../../core/webhook.ts';
import { jobToRow } from '../job-row.ts';
import type { StoreSchema } from '../schema.ts';
import {
  claimDueDeliveriesIn,
  listDeliveriesIn,
  nextDueAtIn,
  recordAttemptIn,
  releaseClaimsIn,
} from '../webhook-queries.ts';
import { deliveryToRow, rowToOutboxEvent, rowToWebhook, webhookToRow } from '../webhook-row.ts';
import type {
  AttemptResult,
  DeliveryClaim,
  DeliveryPage,
  DeliveryQuery,
  DeliveryRecord,
  OutboxEvent,
  WebhookRecord,
  WebhookStore,
} from '../webhook-store.ts';

/**
 * Webhooks, their outbox and deliveries in the job database (`SqliteJobStore.webhooks`), on the same
 * connection as the jobs, whose triggers write the outbox (migration 0008).
 */
export class SqliteWebhookStore implements WebhookStore {
  readonly #db: Kysely<StoreSchema>;

  constructor(db: Kysely<StoreSchema>) {
    this.#db = db;
  }

  async addWebhook(webhook: WebhookRecord): Promise<void> {
    await this.#db.insertInto('webhooks').values(webhookToRow(webhook)).execute();
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    const rows = await this.#db.selectFrom('webhooks').selectAll().orderBy('id').execute();
    return rows.map(rowToWebhook);
  }

  async getWebhook(id: string): Promise<WebhookRecord | undefined> {
    const row = await this.#db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToWebhook(row);
  }

  async removeWebhook(id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async readOutbox(limit: number): Promise<OutboxEvent[]> {
    const rows = await this.#db
      .selectFrom('webhook_outbox')
      .selectAll()
      .orderBy('seq')
      .limit(limit)
      .execute();
    if (rows.length === 0) return [];
    // The snapshot holds the columns jobs had when the triggers were written (migration 0011:
    // every one; rows written before it, 0008's); a column it lacks comes from the row as it is
    // now (or its default, if the job is gone).
    const current = await this.#db
      .selectFrom('jobs')
      .selectAll()
      .where(
        'id',
        'in',
        rows.map((r) => r.job_id),
      )
      .execute();
    const byId = new Map(current.map((r) => [r.id, r]));
    return rows.map((row) => rowToOutboxEvent(row, byId.get(row.job_id)));
  }

  async fanOut(seq: number, deliveries: readonly DeliveryRecord[]): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      // An event already fanned out (its row gone) adds nothing: a repeated call is harmless.
      const taken = await trx.deleteFrom('webhook_outbox').where('seq', '=', seq).executeTakeFirst();
      if (Number(taken.numDeletedRows) > 0 && deliveries.length > 0)
        await trx.insertInto('webhook_deliveries').values(deliveries.map(deliveryToRow)).execute();
    });
  }

  claimDueDeliveries(now: Date, limit: number, claim: DeliveryClaim): Promise<DeliveryRecord[]> {
    return claimDueDeliveriesIn(this.#db, now, limit, claim, false);
  }

  releaseClaims(by: string, now: Date): Promise<number> {
    return releaseClaimsIn(this.#db, by, now);
  }

  nextDueAt(excluding: readonly string[], excludingOrigins: readonly string[] = []): Promise<Date | null> {
    return nextDueAtIn(this.#db, excluding, excludingOrigins);
  }

  async appendOutbox(event: WebhookEvent, job: Job, at: Date): Promise<void> {
    await this.#db
      .insertInto('webhook_outbox')
      .values({ event, job_id: job.id, at: at.getTime(), snapshot: JSON.stringify(jobToRow(job)) })
      .execute();
  }

  recordAttempt(id: string, result: AttemptResult): Promise<DeliveryRecord> {
    return recordAttemptIn(this.#db, id, result);
  }

  listDeliveries(query: DeliveryQuery): Promise<DeliveryPage> {
    return listDeliveriesIn(this.#db, query);
  }

  async countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>> {
    const rows = await this.#db.selectFrom('job_status_counts').selectAll().execute();
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }
}
