import type { Kysely } from 'kysely';
import type { Job, JobStatus } from '../core/job.ts';
import type { WebhookEvent } from '../core/webhook.ts';
import { jobToRow } from './job-row.ts';
import type { StoreSchema } from './schema.ts';
import {
  claimDueDeliveriesIn,
  listDeliveriesIn,
  nextDueAtIn,
  recordAttemptIn,
  releaseClaimsIn,
} from './webhook-queries.ts';
import { deliveryToRow, rowToOutboxEvent, rowToWebhook, webhookToRow } from './webhook-row.ts';
import type {
  AttemptResult,
  DeliveryClaim,
  DeliveryPage,
  DeliveryQuery,
  DeliveryRecord,
  OutboxEvent,
  WebhookRecord,
  WebhookStore,
} from './webhook-store.ts';

/**
 * `WebhookStore` over Kysely, written once for both databases (Kysely speaks either dialect): the
 * SQLite and PostgreSQL stores differ only in how a claim locks its rows (`skipLocked`) and how
 * they count jobs by status. Their triggers on `jobs` write the outbox in the transaction of every
 * job change, whichever path made it.
 */
export abstract class KyselyWebhookStore implements WebhookStore {
  readonly #db: Kysely<StoreSchema>;
  readonly #skipLocked: boolean;
  readonly #storeError: (err: unknown) => unknown;

  /**
   * `skipLocked`: claims run at the same time on other connections (PostgreSQL, the nodes of a
   * cluster), and pass over the rows another claim has locked rather than wait for them.
   * `storeError`: what a failed query is reported as (PostgreSQL: `pgStoreError`, so that a lost
   * database is 503 and a full disk 507, not 500); SQLite's driver maps its errors itself.
   */
  protected constructor(
    db: Kysely<StoreSchema>,
    options: { readonly skipLocked: boolean; readonly storeError?: (err: unknown) => unknown },
  ) {
    this.#db = db;
    this.#skipLocked = options.skipLocked;
    this.#storeError = options.storeError ?? ((err) => err);
  }

  /** Runs `work`, reporting its failure through `storeError`. */
  protected async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw this.#storeError(error);
    }
  }

  abstract countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>>;

  addWebhook(webhook: WebhookRecord): Promise<void> {
    return this.run(async () => {
      await this.#db.insertInto('webhooks').values(webhookToRow(webhook)).execute();
    });
  }

  listWebhooks(): Promise<WebhookRecord[]> {
    return this.run(async () => {
      const rows = await this.#db.selectFrom('webhooks').selectAll().orderBy('id').execute();
      return rows.map(rowToWebhook);
    });
  }

  getWebhook(id: string): Promise<WebhookRecord | undefined> {
    return this.run(async () => {
      const row = await this.#db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
      return row && rowToWebhook(row);
    });
  }

  removeWebhook(id: string): Promise<boolean> {
    return this.run(async () => {
      const result = await this.#db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  readOutbox(limit: number): Promise<OutboxEvent[]> {
    return this.run(() => this.#readOutbox(limit));
  }

  async #readOutbox(limit: number): Promise<OutboxEvent[]> {
    const rows = await this.#db
      .selectFrom('webhook_outbox')
      .selectAll()
      .orderBy('seq')
      .limit(limit)
      .execute();
    if (rows.length === 0) return [];
    // The snapshot holds the columns jobs had when its trigger was written (PostgreSQL: the whole
    // row; SQLite: every column since migration 0011, 0008's before); a column it lacks comes from
    // the row as it is now (or its default, if the job is gone).
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

  fanOut(seq: number, deliveries: readonly DeliveryRecord[]): Promise<void> {
    return this.run(() => this.#fanOut(seq, deliveries));
  }

  async #fanOut(seq: number, deliveries: readonly DeliveryRecord[]): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      // Delete first: an event already fanned out (its row gone) adds nothing, so a repeated call
      // is harmless, and when two nodes fan out the same event the second waits for the first's
      // commit, then finds the row gone: an event is fanned out once.
      const taken = await trx.deleteFrom('webhook_outbox').where('seq', '=', seq).executeTakeFirst();
      if (Number(taken.numDeletedRows) > 0 && deliveries.length > 0) {
        await trx.insertInto('webhook_deliveries').values(deliveries.map(deliveryToRow)).execute();
      }
    });
  }

  claimDueDeliveries(now: Date, limit: number, claim: DeliveryClaim): Promise<DeliveryRecord[]> {
    return this.run(() => claimDueDeliveriesIn(this.#db, now, limit, claim, this.#skipLocked));
  }

  releaseClaims(by: string, now: Date): Promise<number> {
    return this.run(() => releaseClaimsIn(this.#db, by, now));
  }

  nextDueAt(excluding: readonly string[], excludingOrigins: readonly string[] = []): Promise<Date | null> {
    return this.run(() => nextDueAtIn(this.#db, excluding, excludingOrigins));
  }

  appendOutbox(event: WebhookEvent, job: Job, at: Date): Promise<void> {
    return this.run(async () => {
      await this.#db
        .insertInto('webhook_outbox')
        .values({ event, job_id: job.id, at: at.getTime(), snapshot: JSON.stringify(jobToRow(job)) })
        .execute();
    });
  }

  recordAttempt(id: string, result: AttemptResult): Promise<DeliveryRecord> {
    return this.run(() => recordAttemptIn(this.#db, id, result));
  }

  listDeliveries(query: DeliveryQuery): Promise<DeliveryPage> {
    return this.run(() => listDeliveriesIn(this.#db, query));
  }
}
