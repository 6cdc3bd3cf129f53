import type { AuditEntry, AuditSink } from '../core/audit.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { AuditPage, AuditQuery, UserStore } from '../store/user-store.ts';

/** Entries waiting to be written at most; more are dropped (and the drop logged) while the store fails. */
const MAX_PENDING = 100_000;

/**
 * The audit trail's sink: entries are kept in order and written in batches, one transaction per
 * batch, so recording costs a call nothing but an array push. Entries recorded in the same turn
 * go in one batch; while a batch is being written, the next one gathers. A read (`list`) waits for
 * what was recorded before it, so a caller reads its own actions. A failed write is logged with the
 * number of entries lost; the calls themselves never fail because of it.
 */
export class AuditLog implements AuditSink {
  readonly #store: Pick<UserStore, 'appendAudit' | 'listAudit'>;
  readonly #logger: Logger;
  #pending: AuditEntry[] = [];
  #writing: Promise<void> | undefined;
  #dropped = 0;

  constructor(store: Pick<UserStore, 'appendAudit' | 'listAudit'>, options: { logger?: Logger } = {}) {
    this.#store = store;
    this.#logger = options.logger ?? silentLogger;
  }

  record(entry: AuditEntry): void {
    if (this.#pending.length >= MAX_PENDING) {
      this.#dropped++;
      return;
    }
    this.#pending.push(entry);
    // Started on the next microtask, so that what this turn records goes in the same batch.
    this.#writing ??= Promise.resolve().then(() => this.#write());
  }

  /** Newest first, once every entry recorded before the call is written. */
  async list(query: AuditQuery): Promise<AuditPage> {
    await this.flush();
    return this.#store.listAudit(query);
  }

  /** Resolves once every entry recorded so far is written (or its loss logged). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #write(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        try {
          await this.#store.appendAudit(batch);
        } catch (err) {
          this.#logger.error(
            { err, lost: batch.length },
            `${batch.length} audit entries could not be written`,
          );
        }
        if (this.#dropped > 0) {
          this.#logger.error({ lost: this.#dropped }, `${this.#dropped} audit entries were dropped`);
          this.#dropped = 0;
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
