import type { AuditEntry, AuditSink } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { WRITE_RETRY_FIRST_MS, WRITE_RETRY_MAX_MS } from '../engine/until-written.ts';
import type { AuditPage, AuditQuery, UserStore } from '../store/user-store.ts';

/**
 * Entries waiting to be written at most, the batch being written among them; more are dropped
 * (and the drop logged) while the store fails.
 */
export const MAX_PENDING = 100_000;

/**
 * How long `close` keeps trying to write what is pending, on the clock: long enough for a store
 * that is failing over, short enough that one that never comes back does not hold up the shutdown.
 */
export const AUDIT_CLOSE_GRACE_MS = 5_000;

export interface AuditLogOptions {
  readonly logger?: Logger;
  /** The retries' backoff and the close's grace run on it. Default: the system clock. */
  readonly clock?: Clock;
  /** Entries held at most while the store fails; default `MAX_PENDING` (tests set a small one). */
  readonly maxPending?: number;
}

/**
 * The audit trail's sink: entries are kept in order and written in batches, one transaction per
 * batch, so recording costs a call nothing but an array push. Entries recorded in the same turn
 * go in one batch; while a batch is being written, the next one gathers. A read (`list`) waits for
 * what was recorded before it, so a caller reads its own actions. The calls themselves never fail
 * because of the trail.
 *
 * A write that fails on what may heal (a full disk, the database unreachable or failing over, a
 * lock waited for too long) puts its batch back at the head of the pending entries and is tried
 * again with a doubling backoff: the changes made while the disk is full (stops and timeouts are
 * carried out then) are exactly the ones whose record matters. A refusal that will not heal drops
 * the batch and logs it.
 */
export class AuditLog implements AuditSink {
  readonly #store: Pick<UserStore, 'appendAudit' | 'listAudit'>;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #maxPending: number;
  #pending: AuditEntry[] = [];
  /** Entries of the batch being written: they count against `MAX_PENDING`, since a failure puts them back. */
  #inFlight = 0;
  #writing: Promise<void> | undefined;
  /** What `record` dropped at the bound since it was last reported. */
  #dropped: DroppedEntries | undefined;
  /** Since the first failure that is being retried, until a write succeeds. */
  #failing: { readonly since: Date; readonly err: unknown } | undefined;
  /** The wait before the next try; `close` cuts it short. */
  #retry: { readonly wake: () => void } | undefined;
  /** Set once `close` is done waiting: a failure then drops its batch instead of retrying it. */
  #gaveUp = false;
  #closed: Promise<void> | undefined;
  /** Resolved (and renewed) whenever a try ends or the writer stops. */
  #changed = Promise.withResolvers<void>();

  constructor(store: Pick<UserStore, 'appendAudit' | 'listAudit'>, options: AuditLogOptions = {}) {
    this.#store = store;
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#maxPending = options.maxPending ?? MAX_PENDING;
  }

  record(recorded: AuditEntry): void {
    const entry = storable(recorded);
    if (this.#pending.length + this.#inFlight >= this.#maxPending) {
      if (this.#dropped === undefined) {
        this.#logger.error(
          { pending: this.#maxPending, err: this.#failing?.err },
          `the audit trail holds ${this.#maxPending} entries it could not write yet: entries recorded from now on are dropped until the store takes writes again`,
        );
        this.#dropped = new DroppedEntries();
      }
      this.#dropped.add(entry);
      return;
    }
    this.#pending.push(entry);
    // Started on the next microtask, so that what this turn records goes in the same batch.
    this.#writing ??= Promise.resolve().then(() => this.#write());
  }

  /**
   * Newest first, once every entry recorded before the call is written; while the store fails to
   * take writes, at once (a read that waited for them would wait for as long as the failure lasts).
   */
  async list(query: AuditQuery): Promise<AuditPage> {
    while (this.#writing && this.#failing === undefined) await this.#changed.promise;
    return this.#store.listAudit(query);
  }

  /**
   * Resolves once every entry recorded so far is written or its loss logged. While the store fails
   * on what may heal, that is once it heals: a caller that must not wait for that calls `close`.
   */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /**
   * Writes what is pending, trying again at once and then with the backoff while the store fails,
   * for at most `AUDIT_CLOSE_GRACE_MS` on the clock. What is unwritten then is logged as lost, and
   * the close resolves even if the store never answers the try in flight. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    let timer: { clear(): void } | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = this.#clock.setTimer(resolve, AUDIT_CLOSE_GRACE_MS);
    });
    this.#retry?.wake();
    let written: boolean;
    try {
      written = (await Promise.race([this.flush().then(() => true), graceOver.then(() => false)])) === true;
    } finally {
      timer?.clear();
      // From now on a failure drops its batch: an entry recorded after the close (its store closed
      // next) must not start retries that nothing would end.
      this.#gaveUp = true;
    }
    if (written) return;
    const lost = this.#pending;
    this.#pending = [];
    this.#retry?.wake();
    if (lost.length > 0)
      this.#logLost(lost, this.#failing?.err, 'the server closed before the store took them');
    this.#reportDropped();
  }

  async #write(): Promise<void> {
    let waitMs = WRITE_RETRY_FIRST_MS;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        this.#inFlight = batch.length;
        const failure = await this.#store.appendAudit(batch).then(
          () => undefined,
          (err: unknown) => ({ err }),
        );
        this.#inFlight = 0;
        if (failure === undefined) {
          waitMs = WRITE_RETRY_FIRST_MS;
          if (this.#failing) {
            this.#logger.info(
              { failingSince: this.#failing.since.toISOString(), written: batch.length },
              'the audit trail is written again: the entries kept while the store failed are recorded',
            );
            this.#failing = undefined;
          }
          this.#reportDropped();
        } else if (heals(failure.err) && !this.#gaveUp) {
          // Back at the head, before what gathered meanwhile: the trail stays in order. The bound
          // holds, since `record` counted the batch in flight.
          this.#pending = batch.concat(this.#pending);
          if (this.#failing === undefined) {
            this.#failing = { since: this.#clock.now(), err: failure.err };
            this.#logger.error(
              { err: failure.err, pending: this.#pending.length },
              `${batch.length} audit entries could not be written; they are kept and tried again until the store takes them`,
            );
          }
          this.#notify();
          await this.#wait(waitMs);
          waitMs = Math.min(waitMs * 2, WRITE_RETRY_MAX_MS);
        } else {
          this.#logLost(
            batch,
            failure.err,
            this.#gaveUp ? 'the server closed before the store took them' : 'the store refused them',
          );
          this.#reportDropped();
        }
        this.#notify();
      }
    } finally {
      this.#writing = undefined;
      this.#notify();
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        timer.clear();
        this.#retry = undefined;
        resolve();
      };
      const timer = this.#clock.setTimer(wake, ms);
      this.#retry = { wake };
    });
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  #logLost(entries: readonly AuditEntry[], err: unknown, why: string): void {
    const lost = new DroppedEntries();
    for (const entry of entries) lost.add(entry);
    this.#logger.error(
      { err, ...lost.summary() },
      `${entries.length} audit entries could not be written and were dropped: ${why}`,
    );
  }

  #reportDropped(): void {
    const dropped = this.#dropped;
    if (dropped === undefined) return;
    this.#dropped = undefined;
    this.#logger.error(
      dropped.summary(),
      `${dropped.count} audit entries were dropped: the trail already held ${this.#maxPending} entries waiting for the store`,
    );
  }
}

/** What a log line says of entries that were not written: how many, of when, and which actions. */
class DroppedEntries {
  count = 0;
  #from: Date | undefined;
  #to: Date | undefined;
  readonly #actions = new Map<string, number>();

  add(entry: AuditEntry): void {
    this.count++;
    if (this.#from === undefined || entry.at < this.#from) this.#from = entry.at;
    if (this.#to === undefined || entry.at > this.#to) this.#to = entry.at;
    this.#actions.set(entry.action, (this.#actions.get(entry.action) ?? 0) + 1);
  }

  summary(): { lost: number; from?: string; to?: string; actions: Record<string, number> } {
    return {
      lost: this.count,
      ...(this.#from ? { from: this.#from.toISOString() } : {}),
      ...(this.#to ? { to: this.#to.toISOString() } : {}),
      actions: Object.fromEntries(this.#actions),
    };
  }
}

/**
 * Whether a failed write is tried again: only what the stores say will pass (a full disk, a store
 * busy or away). Any other error (a value the database refuses) would refuse the batch for ever,
 * and every entry behind it would wait; it is dropped and logged instead.
 */
function heals(err: unknown): boolean {
  return (
    err instanceof JobworkerError && (err.code === 'INSUFFICIENT_STORAGE' || err.code === 'STORE_UNAVAILABLE')
  );
}

/**
 * The entry as a store takes it: a NUL (which PostgreSQL refuses in text, and a caller can put in
 * a name it asks about before any check) written as `\u0000`, so that one caller's input cannot
 * make a batch fail.
 */
function storable(entry: AuditEntry): AuditEntry {
  const clean = (text: string | null) => (text?.includes('\0') ? text.replaceAll('\0', '\\u0000') : text);
  if (![entry.user, entry.role, entry.source, entry.target, entry.result].some((t) => t?.includes('\0')))
    return entry;
  return {
    ...entry,
    user: clean(entry.user),
    role: clean(entry.role),
    source: clean(entry.source),
    target: clean(entry.target),
    result: clean(entry.result) ?? entry.result,
  };
}
