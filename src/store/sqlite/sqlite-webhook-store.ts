import type { Kysely } from 'kysely';
import type { JobStatus } from '../../core/job.ts';
import { KyselyWebhookStore } from '../kysely-webhook-store.ts';
import type { StoreSchema } from '../schema.ts';

/**
 * Webhooks, their outbox and deliveries in the job database (`SqliteJobStore.webhooks`), on the same
 * connection as the jobs, whose triggers write the outbox (migration 0008). One server writes the
 * database (the data directory's lock): its claims need no row locks.
 */
export class SqliteWebhookStore extends KyselyWebhookStore {
  readonly #db: Kysely<StoreSchema>;

  constructor(db: Kysely<StoreSchema>) {
    super(db, { skipLocked: false });
    this.#db = db;
  }

  async countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>> {
    const rows = await this.#db.selectFrom('job_status_counts').selectAll().execute();
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }
}
