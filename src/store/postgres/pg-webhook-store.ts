import type { Kysely } from 'kysely';
import type { JobStatus } from '../../core/job.ts';
import { KyselyWebhookStore } from '../kysely-webhook-store.ts';
import type { StoreSchema } from '../schema.ts';
import { countJobsByStatus } from './pg-job-status-counts.ts';
import { pgStoreError } from './pg-storage-error.ts';

/**
 * Webhooks, their outbox and deliveries in PostgreSQL (migration 0003-webhooks), whose triggers on
 * `jobs` write the outbox and the status counts in the transaction of every job change, whichever
 * node or path made it. The nodes of a cluster claim deliveries at the same time: `skip locked`.
 * Driver errors are reported as the job store reports them (`pgStoreError`).
 */
export class PgWebhookStore extends KyselyWebhookStore {
  readonly #db: Kysely<StoreSchema>;

  /** `url`: the database's, named (password hidden) in the errors `pgStoreError` makes. */
  constructor(db: Kysely<StoreSchema>, url: string) {
    super(db, { skipLocked: true, storeError: (err) => pgStoreError(err, url) });
    this.#db = db;
  }

  countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>> {
    return this.run(() => countJobsByStatus(this.#db));
  }
}
