import type { Job, JobStatus } from '../core/job.ts';
import { DELIVERY_STATUSES, type DeliveryStatus, type WebhookEvent } from '../core/webhook.ts';

/** A server-wide webhook, as stored (its secret included: it signs with it). */
export interface WebhookRecord {
  readonly id: string;
  readonly url: string;
  readonly events: readonly WebhookEvent[];
  readonly secret: string;
  readonly createdAt: Date;
  /** The admin who added it. */
  readonly createdBy: string;
}

/** A job event recorded in the same transaction as the job's change, not yet fanned out. */
export interface OutboxEvent {
  readonly seq: number;
  readonly event: WebhookEvent;
  readonly at: Date;
  /** The job as it was at that moment. */
  readonly job: Job;
}

export { DELIVERY_STATUSES, type DeliveryStatus };

/** One event for one target. */
export interface DeliveryRecord {
  /** UUIDv7; also the idempotency id the receiver sees (`Jobworker-Delivery`), the same on every attempt. */
  readonly id: string;
  readonly event: WebhookEvent;
  readonly jobId: string;
  /** The job's owner: a user lists the deliveries of its own jobs. */
  readonly owner: string;
  /** The server-wide webhook's id; null for the job's own `notify`. */
  readonly webhookId: string | null;
  readonly url: string;
  /** May reach private and loopback addresses (docs/webhooks.md, "SSRF"). */
  readonly trusted: boolean;
  /** The JSON body, the same on every attempt. */
  readonly body: string;
  readonly createdAt: Date;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  /**
   * When the next attempt is due; null once delivered or failed. While an attempt is in flight,
   * the end of its claim's lease: when another node takes the delivery over, should the one
   * attempting it die before recording the attempt.
   */
  readonly nextAt: Date | null;
  readonly lastAt: Date | null;
  /** The HTTP status of the last answer; null when none came (connection refused, timeout, ...). */
  readonly lastStatus: number | null;
  /** Why the last attempt failed; null after a 2xx. */
  readonly lastError: string | null;
}

/** Who takes due deliveries, and until when (`WebhookStore.claimDueDeliveries`). */
export interface DeliveryClaim {
  /** The claimer's name: the node's in a cluster; the same across a server's restarts. */
  readonly by: string;
  /** The lease's end: the deliveries are due again then, if no attempt was recorded. */
  readonly until: Date;
  /** Deliveries not to claim: those whose attempts the claimer still has in flight. */
  readonly excluding?: readonly string[];
  /**
   * At most `max` attempts in flight to one receiver, an origin (`https://host:port`, as
   * `URL.origin` gives it), counting the claimer's own in flight (`inFlight`, by origin): the
   * claim passes over the deliveries to a receiver without room, which keep their turn.
   */
  readonly perOrigin?: { readonly max: number; readonly inFlight: ReadonlyMap<string, number> };
}

/** What one attempt ended with. */
export interface AttemptResult {
  /** Who made it: the claimer that took the delivery for it (`DeliveryClaim.by`). */
  readonly by: string;
  readonly at: Date;
  readonly status: DeliveryStatus;
  readonly httpStatus: number | null;
  readonly error: string | null;
  /** When to try again (status `pending`); null otherwise. */
  readonly nextAt: Date | null;
}

export interface DeliveryQuery {
  readonly owner?: string;
  readonly jobId?: string;
  readonly webhookId?: string;
  /** Only the jobs' own (`notify`) deliveries, none to a server-wide webhook. */
  readonly notifyOnly?: boolean;
  readonly status?: DeliveryStatus;
  /** 1 to 1000. */
  readonly limit: number;
  /** `nextCursor` of the previous page (newest first). */
  readonly cursor?: string;
}

export interface DeliveryPage {
  readonly deliveries: DeliveryRecord[];
  readonly nextCursor: string | null;
}

/**
 * The storage port of webhooks (docs/webhooks.md). The outbox is filled by the store itself, in the
 * transaction of each job change (for SQLite: triggers of migration 0008), for jobs with a `notify`
 * and for every job while a server-wide webhook exists.
 */
export interface WebhookStore {
  addWebhook(webhook: WebhookRecord): Promise<void>;
  listWebhooks(): Promise<WebhookRecord[]>;
  getWebhook(id: string): Promise<WebhookRecord | undefined>;
  /** Removes it (its pending deliveries then fail at their next attempt); false for an unknown id. */
  removeWebhook(id: string): Promise<boolean>;
  /** The oldest `limit` outbox events. */
  readOutbox(limit: number): Promise<OutboxEvent[]>;
  /** Replaces one outbox event by its deliveries, in one transaction. */
  fanOut(seq: number, deliveries: readonly DeliveryRecord[]): Promise<void>;
  /**
   * Takes up to `limit` pending deliveries due at `now`, earliest first, for one attempt each:
   * in the same transaction their `nextAt` becomes `claim.until` (the lease) and their holder
   * `claim.by`, so no other claimer (a second pass, another node of a cluster) gets them until
   * the attempt is recorded or the lease ends (a claimer that died). Concurrent claims never
   * return the same delivery. The deliveries come back as they are after the claim.
   */
  claimDueDeliveries(now: Date, limit: number, claim: DeliveryClaim): Promise<DeliveryRecord[]>;
  /**
   * Gives back the pending deliveries `by` holds, due at `now`: a server that starts again calls
   * it for its own name, since no attempt of its earlier life is still in flight. Returns how many.
   */
  releaseClaims(by: string, now: Date): Promise<number>;
  /**
   * The earliest `nextAt` of a pending delivery not among `excluding` (those in flight here) and
   * not to one of `excludingOrigins` (receivers with all the attempts in flight they may have), or
   * null. A delivery another claimer holds counts at its lease's end.
   */
  nextDueAt(excluding: readonly string[], excludingOrigins?: readonly string[]): Promise<Date | null>;
  /**
   * Records an event that is not a state change (`job:progress`) in the outbox; the state changes
   * are recorded by the store itself, in their own transactions.
   */
  appendOutbox(event: WebhookEvent, job: Job, at: Date): Promise<void>;
  /**
   * Records an attempt and ends its claim; returns the delivery as it is now. An attempt whose
   * claim is no longer its claimer's (its lease ended, and another took the delivery over, and
   * maybe recorded or gave it back since) is counted, with its answer, but leaves the delivery's
   * claim and time as they are, unless it delivered it. A delivery decided already is left as
   * it is, the attempt not counted.
   */
  recordAttempt(id: string, result: AttemptResult): Promise<DeliveryRecord>;
  listDeliveries(query: DeliveryQuery): Promise<DeliveryPage>;
  /** Jobs per status, kept as jobs change (no count over the table). */
  countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>>;
}
