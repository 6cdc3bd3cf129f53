import { EventEmitter } from 'node:events';
import type { Clock, ClockTimer } from '../core/clock.ts';
import { newJobId } from '../core/ids.ts';
import type { Job } from '../core/job.ts';
import type { Logger } from '../core/logger.ts';
import type { WebhookEvent } from '../core/webhook.ts';
import { fullOrigins, originOf } from '../store/webhook-queries.ts';
import type { DeliveryRecord, OutboxEvent, WebhookStore } from '../store/webhook-store.ts';
import type { WebhookAddressPolicy } from './address-policy.ts';
import { LookupGate } from './lookup-gate.ts';
import { ProgressThrottle } from './progress-throttle.ts';
import { retryDelayMs, WEBHOOK_RETRY_DEFAULTS, type WebhookRetryPolicy } from './webhook-backoff.ts';
import { type PostResult, postWebhook } from './webhook-sender.ts';
import { SIGNATURE_HEADER, signWebhook } from './webhook-signature.ts';

export interface WebhookDispatcherOptions {
  readonly store: WebhookStore;
  readonly clock: Clock;
  readonly policy: WebhookAddressPolicy;
  /** Signs the deliveries of jobs' own `notify` (server-wide webhooks have their own secrets). */
  readonly signingSecret: string;
  /** True when `owner`'s own webhooks may reach private addresses (an admin's). */
  readonly isTrusted: (owner: string) => boolean;
  /** The job as the API shows it, for the body. */
  readonly jobJson: (job: Job) => unknown;
  /** `User-Agent` of the POSTs, e.g. `jobworker/0.1.0`. */
  readonly userAgent: string;
  readonly logger: Logger;
  readonly retry?: Partial<WebhookRetryPolicy>;
  /** An attempt without an answer after this long fails. Default 10 s. */
  readonly timeoutMs?: number;
  /**
   * The DNS lookups of the attempts, a few at once and one per name (`LookupGate`): the server
   * gives one of half its configured thread pool (`lookupsFor`); by default two, half of libuv's
   * default four, so that receivers whose names never resolve leave the server's file work the
   * others.
   */
  readonly lookups?: LookupGate;
  /** Attempts in flight at once. Default 16. */
  readonly concurrency?: number;
  /**
   * Attempts in flight at once to one receiver (an origin: scheme, host and port). Default 4: a
   * receiver that answers slowly or not at all holds at most these of the `concurrency` slots, and
   * the others go on delivering to everyone else.
   */
  readonly perOrigin?: number;
  /**
   * This server's name as a claimer of deliveries (`WebhookStore.claimDueDeliveries`): its node's
   * in a cluster, the same across its restarts, so that it gives back at start what its earlier
   * life claimed and never recorded. Default `local` (a server alone on its database).
   */
  readonly claimer?: string;
  /** The shortest time between two `job:progress` events of one job (default 1 s: `ProgressThrottle`). */
  readonly progressIntervalMs?: number;
  /**
   * Whether the job still runs, asked before a `job:progress` event is written: one held back a
   * moment must not come after the job's `job:finished`, which the store wrote with its end.
   * Absent: not asked.
   */
  readonly stillRunning?: (id: string) => Promise<boolean>;
}

/**
 * How long a claimed delivery stays with its claimer beyond the attempt's own timeout: room for
 * the webhook's lookup before the POST and the record after it on a busy database. A claimer that
 * dies leaves its deliveries to the others (or to itself, started again) this long after.
 */
export const CLAIM_MARGIN_MS = 50_000;

/** The wait before claiming again when a claim found what was due locked by another node's. */
const CONTENDED_RETRY_MS = 100;

/**
 * While there is nothing to deliver, job changes that cannot have made a delivery run a pass at
 * most this often (see `notice`): a webhook added by another node of a cluster writes outbox rows
 * here through the store's triggers, and this bounds how long they wait.
 */
export const QUIET_RECHECK_MS = 1000;

/** Lifecycle events of the dispatcher; tests and metrics listen to them. */
export interface WebhookDispatcherEvents {
  /** An attempt ended; the delivery as recorded after it. */
  'delivery:attempt': [delivery: DeliveryRecord];
  'dispatcher:error': [error: Error];
}

/** The body every delivery POSTs (docs/webhooks.md, "Body"). */
export interface WebhookBody {
  /** The delivery id, also in `Jobworker-Delivery`: the same on every attempt (idempotency). */
  readonly id: string;
  readonly event: WebhookEvent;
  /** When the event happened (ISO 8601). */
  readonly at: string;
  readonly job: unknown;
}

/**
 * Delivers webhooks at least once. Each pass first fans the outbox out into deliveries (one per
 * event and target, written with the outbox row's removal in one transaction), then attempts every
 * delivery that is due, up to `concurrency` at once, each claimed first for a lease so that one
 * server of a cluster makes it. A failed attempt is retried with exponential backoff and jitter
 * on the injected clock until `maxAgeMs` (24 h) after the delivery was made, the last attempt at
 * that deadline, then recorded `failed`.
 * Passes run when told (`kick`: after each job change and at start, which picks up what a killed
 * server left) and when the next retry is due (one timer, never one per delivery).
 */
export class WebhookDispatcher extends EventEmitter<WebhookDispatcherEvents> {
  readonly #o: WebhookDispatcherOptions;
  readonly #retry: WebhookRetryPolicy;
  readonly #timeoutMs: number;
  readonly #lookups: LookupGate;
  readonly #concurrency: number;
  readonly #perOrigin: number;
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Attempts in flight by receiver (`URL.origin`); an origin leaves when its last one ends. */
  readonly #inFlightTo = new Map<string, number>();
  readonly #claimer: string;
  /** Whether the claims of this claimer's earlier life were given back (the first pass does). */
  #released = false;
  #pass: Promise<void> | null = null;
  #again = false;
  #timer: ClockTimer | null = null;
  /** When `#timer` fires (ms on the clock). */
  #timerAt = 0;
  #closed = false;
  /** Events some server-wide webhook wants, as of the last pass (see `record`). */
  #wantedByWebhooks = new Set<WebhookEvent>();
  /**
   * When the last pass ended having found no webhook, no event in the outbox and no delivery
   * pending or in flight (ms on the clock); null when it found something (or none ran yet).
   */
  #quietAt: number | null = null;
  /** The one pass owed to changes `notice` let by while quiet. */
  #recheck: ClockTimer | null = null;
  /** One `job:progress` event per job per second at most (see `ProgressThrottle`). */
  readonly #progress: ProgressThrottle;

  constructor(options: WebhookDispatcherOptions) {
    super();
    this.#o = options;
    this.#retry = { ...WEBHOOK_RETRY_DEFAULTS, ...options.retry };
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#lookups = options.lookups ?? new LookupGate();
    this.#concurrency = wholeAtLeastOne('concurrency', options.concurrency ?? 16);
    this.#perOrigin = wholeAtLeastOne('perOrigin', options.perOrigin ?? 4);
    this.#claimer = options.claimer ?? 'local';
    this.#progress = new ProgressThrottle({
      clock: options.clock,
      ...(options.progressIntervalMs === undefined ? {} : { intervalMs: options.progressIntervalMs }),
      write: async (job) => {
        if (options.stillRunning && !(await options.stillRunning(job.id))) return;
        await this.#append('job:progress', job);
      },
      onError: (err, job) =>
        options.logger.error({ err, jobId: job.id }, 'could not record a job:progress webhook event'),
    });
  }

  /** Runs a pass soon (or another after the one running). Never throws. */
  kick(): void {
    if (this.#closed) return;
    if (this.#pass) {
      this.#again = true;
      return;
    }
    this.#pass = this.#loop().finally(() => {
      this.#pass = null;
      // A kick between the loop's last look at `#again` and here would be lost, and with it the
      // pass (and the timer) an attempt that just ended asked for.
      if (this.#again) this.kick();
    });
  }

  /**
   * Tells of a job's state change, whose outbox row (if anyone wants one) the store wrote with it.
   * A pass costs four queries; a server with no webhook would pay them for every start and end.
   * So while the last pass found nothing to do, a change of a job without its own `notify` runs no
   * pass of its own: webhooks added here kick a pass (`kick`), and what another node's webhook
   * made the triggers write is picked up by one pass at most `QUIET_RECHECK_MS` after the last.
   */
  notice(job: Job): void {
    if (this.#closed) return;
    const quietAt = this.#quietAt;
    if (job.spec.notify || quietAt === null) {
      this.kick();
      return;
    }
    if (this.#recheck) return;
    const wait = quietAt + QUIET_RECHECK_MS - this.#o.clock.now().getTime();
    if (wait <= 0) {
      this.kick();
      return;
    }
    this.#recheck = this.#o.clock.setTimer(() => {
      this.#recheck = null;
      this.kick();
    }, wait);
  }

  /**
   * Records an event that is not a state change (the engine's `job:progress`) and delivers it,
   * when someone wants it: the job's own `notify`, or a server-wide webhook (as of the last pass;
   * adding a webhook runs one). State changes need no call: the store records them with the
   * change itself.
   */
  async record(event: WebhookEvent, job: Job): Promise<void> {
    if (!job.spec.notify?.events.includes(event) && !this.#wantedByWebhooks.has(event)) return;
    if (event === 'job:progress') return this.#progress.offer(job);
    await this.#append(event, job);
  }

  /** The job ended: progress it reported in the last second and not sent yet is dropped (`ProgressThrottle`). */
  jobEnded(id: string): void {
    this.#progress.forget(id);
  }

  async #append(event: WebhookEvent, job: Job): Promise<void> {
    await this.#o.store.appendOutbox(event, job, this.#o.clock.now());
    this.kick();
  }

  /** Resolves once held progress being written, the pass running now (if any) and the attempts in flight have ended. */
  async settled(): Promise<void> {
    // A held progress event being written kicks a pass once written: that pass is waited for too.
    await this.#progress.settled();
    while (this.#pass || this.#inFlight.size > 0) {
      await this.#pass;
      await Promise.all(this.#inFlight.values());
    }
  }

  /**
   * Stops passes and the timer; attempts in flight end by themselves (or time out). Then what this
   * server still holds (attempts it could not record, or claims whose answer it never got) is
   * given back: due now for this server's next start, and for another node of a cluster at its
   * next pass (at the latest when the lease would have ended, when it looks anyway).
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#progress.close();
    this.#timer?.clear();
    this.#recheck?.clear();
    this.#recheck = null;
    await this.settled();
    // A dispatcher that never ran a pass claimed nothing: what a process of the same name holds
    // (a duplicate node id, a start that failed before its first pass) is not this one's to give.
    if (!this.#released) return;
    try {
      await this.#o.store.releaseClaims(this.#claimer, this.#o.clock.now());
    } catch (err) {
      // The store is gone (closed first, or lost): the next start gives them back instead.
      this.#o.logger.warn({ err }, 'webhook claims not given back at close');
    }
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        if (!this.#released) {
          // Nothing of an earlier life of this server is in flight: what it claimed is due now,
          // not at its leases' end (a cluster's other nodes hold claims of their own names).
          await this.#o.store.releaseClaims(this.#claimer, this.#o.clock.now());
          this.#released = true;
        }
        const found = await this.#fanOut();
        const due = await this.#deliverDue();
        const next = await this.#arm(due);
        // The verdict of the last pass holds while the next one runs: a webhook added meanwhile
        // kicked one more, which decides again.
        const quiet = !found && !due && next === null && this.#inFlight.size === 0;
        this.#quietAt = quiet ? this.#o.clock.now().getTime() : null;
      } catch (err) {
        this.#quietAt = null;
        this.#o.logger.error({ err }, 'webhook dispatch failed');
        this.emit('dispatcher:error', err as Error);
        // The pass did not get to arm the timer: without one, an idle server would try again only
        // at its next job change. The store may be back by then (a failover, a busy database).
        this.#armRetry(this.#retry.initialMs);
      }
    } while (this.#again && !this.#closed);
  }

  /** A timer for one more pass in `ms`, unless the one armed comes sooner. */
  #armRetry(ms: number): void {
    if (this.#closed) return;
    const at = this.#o.clock.now().getTime() + ms;
    if (this.#timer !== null && this.#timerAt <= at) return;
    this.#setTimer(at);
  }

  /** The one timer, for a pass at `at` (ms on the clock). */
  #setTimer(at: number): void {
    this.#timer?.clear();
    this.#timerAt = at;
    this.#timer = this.#o.clock.setTimer(
      () => {
        this.#timer = null;
        this.kick();
      },
      Math.max(0, at - this.#o.clock.now().getTime()),
    );
  }

  /** Fans the outbox out into deliveries; true when there was a webhook or an event. */
  async #fanOut(): Promise<boolean> {
    let webhooks = await this.#o.store.listWebhooks();
    this.#wantedByWebhooks = new Set(webhooks.flatMap((w) => w.events));
    let found = webhooks.length > 0;
    for (;;) {
      const events = await this.#o.store.readOutbox(100);
      if (events.length === 0) return found;
      found = true;
      webhooks = await this.#o.store.listWebhooks();
      for (const event of events) {
        const targets: { url: string; webhookId: string | null; trusted: boolean }[] = [];
        const notify = event.job.spec.notify;
        if (notify?.events.includes(event.event)) {
          targets.push({ url: notify.url, webhookId: null, trusted: this.#o.isTrusted(event.job.owner) });
        }
        for (const w of webhooks) {
          if (w.events.includes(event.event)) targets.push({ url: w.url, webhookId: w.id, trusted: true });
        }
        const now = this.#o.clock.now();
        await this.#o.store.fanOut(
          event.seq,
          targets.map((t) => this.#delivery(event, t, now)),
        );
      }
    }
  }

  #delivery(
    event: OutboxEvent,
    target: { url: string; webhookId: string | null; trusted: boolean },
    now: Date,
  ): DeliveryRecord {
    const id = newJobId(now.getTime());
    const body: WebhookBody = {
      id,
      event: event.event,
      at: event.at.toISOString(),
      job: this.#o.jobJson(event.job),
    };
    return {
      id,
      event: event.event,
      jobId: event.job.id,
      owner: event.job.owner,
      webhookId: target.webhookId,
      url: target.url,
      trusted: target.trusted,
      body: JSON.stringify(body),
      createdAt: now,
      status: 'pending',
      attempts: 0,
      nextAt: now,
      lastAt: null,
      lastStatus: null,
      lastError: null,
    };
  }

  /** Attempts what is due; true when something was (or every slot is busy). */
  async #deliverDue(): Promise<boolean> {
    const room = this.#concurrency - this.#inFlight.size;
    if (room <= 0 || this.#closed) return room <= 0;
    const now = this.#o.clock.now();
    // A claim is a lease: a delivery whose attempt is never recorded (this server died, or its
    // database failed the record) is due again at its end, here or on another node, and not at
    // every pass before that (as fast as a receiver answers).
    const due = await this.#o.store.claimDueDeliveries(now, room, {
      by: this.#claimer,
      until: new Date(now.getTime() + this.#timeoutMs + CLAIM_MARGIN_MS),
      // Not even claimed again (its lease extended): its attempt's own record ends the claim.
      excluding: [...this.#inFlight.keys()],
      // A receiver without room is passed over; what waits for it keeps its turn.
      perOrigin: { max: this.#perOrigin, inFlight: this.#inFlightTo },
    });
    // Closed while the store answered: nothing starts after close(), which gives them back.
    if (this.#closed) return false;
    for (const delivery of due) {
      // Claimed again while its attempt here outlived the lease (a stalled database, a host that
      // slept): the claim only extended it. A second attempt from this server would overwrite
      // the first in `#inFlight`, whose end would then forget the second.
      if (this.#inFlight.has(delivery.id)) continue;
      const origin = originOf(delivery.url);
      this.#inFlightTo.set(origin, (this.#inFlightTo.get(origin) ?? 0) + 1);
      const attempt: Promise<void> = this.#attempt(delivery)
        .catch((err: Error) => {
          this.#o.logger.error({ err, deliveryId: delivery.id }, 'webhook attempt failed to record');
          this.emit('dispatcher:error', err);
        })
        .finally(() => {
          if (this.#inFlight.get(delivery.id) === attempt) this.#inFlight.delete(delivery.id);
          const left = (this.#inFlightTo.get(origin) ?? 1) - 1;
          if (left > 0) this.#inFlightTo.set(origin, left);
          else this.#inFlightTo.delete(origin);
          this.kick();
        });
      this.#inFlight.set(delivery.id, attempt);
    }
    return due.length > 0;
  }

  /** The receivers with as many attempts in flight as one may have. */
  #fullOrigins(): string[] {
    return fullOrigins(this.#inFlightTo, this.#perOrigin);
  }

  async #attempt(delivery: DeliveryRecord): Promise<void> {
    const secret =
      delivery.webhookId === null
        ? this.#o.signingSecret
        : (await this.#o.store.getWebhook(delivery.webhookId))?.secret;
    const at = this.#o.clock.now();
    const result: PostResult =
      secret === undefined
        ? { error: `webhook ${delivery.webhookId} was removed` }
        : await postWebhook(
            {
              url: delivery.url,
              body: delivery.body,
              trusted: delivery.trusted,
              headers: {
                'user-agent': this.#o.userAgent,
                'jobworker-event': delivery.event,
                'jobworker-delivery': delivery.id,
                [SIGNATURE_HEADER]: signWebhook(secret, at, delivery.body),
              },
            },
            {
              clock: this.#o.clock,
              policy: this.#o.policy,
              timeoutMs: this.#timeoutMs,
              lookups: this.#lookups,
            },
          );
    const now = this.#o.clock.now();
    const ok = 'status' in result && result.status >= 200 && result.status < 300;
    let status: DeliveryRecord['status'] = ok ? 'delivered' : 'pending';
    let nextAt: Date | null = null;
    if (!ok) {
      // The last attempt is made at the deadline itself: a wait that would pass it is cut short,
      // rather than giving up as much as a whole wait (up to an hour) before the promised age.
      const deadline = delivery.createdAt.getTime() + this.#retry.maxAgeMs;
      const next = now.getTime() + retryDelayMs(this.#retry, delivery.attempts + 1);
      const hopeless = secret === undefined || ('error' in result && result.refused === true);
      if (hopeless || now.getTime() >= deadline) status = 'failed';
      else nextAt = new Date(Math.min(next, deadline));
    }
    const recorded = await this.#o.store.recordAttempt(delivery.id, {
      by: this.#claimer,
      at,
      status,
      httpStatus: 'status' in result ? result.status : null,
      error: ok ? null : 'error' in result ? result.error : `answered HTTP ${result.status}`,
      nextAt,
    });
    // A delivery another pass or node had decided meanwhile is left as it was: nothing to tell.
    if (recorded.status !== status || recorded.lastAt?.getTime() !== at.getTime()) return;
    if (status === 'failed') {
      this.#o.logger.warn(
        { deliveryId: delivery.id, jobId: delivery.jobId, url: delivery.url, attempts: recorded.attempts },
        `webhook delivery gave up: ${recorded.lastError}`,
      );
    }
    this.emit('delivery:attempt', recorded);
  }

  /**
   * One timer for the next retry due that is not in flight (those kick when they end). Resolves
   * with when that is, or null for none. `claimed`: this pass's claim got something.
   */
  async #arm(claimed: boolean): Promise<Date | null> {
    this.#timer?.clear();
    this.#timer = null;
    if (this.#closed) return null;
    // What waits for a full receiver is not due for this pass: the end of one of its attempts
    // kicks the next.
    const next = await this.#o.store.nextDueAt([...this.#inFlight.keys()], this.#fullOrigins());
    // Closed while the store answered: close() cleared the timer, none is armed again.
    if (this.#closed || next === null) return null;
    const wait = next.getTime() - this.#o.clock.now().getTime();
    if (wait <= 0) {
      // Due now: another pass, unless every slot is busy (an attempt that ends kicks one). A
      // claim that got nothing while something is due met another node's claim still open (its
      // rows locked): look again shortly rather than at once, or this loop would spin until
      // that transaction ends.
      if (this.#inFlight.size >= this.#concurrency) return next;
      if (claimed) this.#again = true;
      else this.#setTimer(this.#o.clock.now().getTime() + CONTENDED_RETRY_MS);
      return next;
    }
    this.#setTimer(next.getTime());
    return next;
  }
}

/** `value` when it is a whole number of at least 1; a dispatcher with none could deliver nothing. */
function wholeAtLeastOne(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`WebhookDispatcher: \`${name}\` must be a whole number of at least 1, got ${value}`);
  }
  return value;
}
