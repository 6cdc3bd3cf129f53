import { randomBytes } from 'node:crypto';
import type { Caller } from '../auth/principal.ts';
import type { AuditSink } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { JobworkerError, ValidationError } from '../core/errors.ts';
import { isJobId, newJobId } from '../core/ids.ts';
import { type WebhookEvent, webhookEvents, webhookUrl } from '../core/webhook.ts';
import {
  DELIVERY_STATUSES,
  type DeliveryPage,
  type DeliveryStatus,
  type WebhookRecord,
  type WebhookStore,
} from '../store/webhook-store.ts';
import { auditedCall } from './audited-call.ts';
import { requireAdmin } from './require-admin.ts';

/** A server-wide webhook as listed: never its secret. */
export type WebhookView = Omit<WebhookRecord, 'secret'>;

/** A new webhook: its view and its secret, shown this once. */
export interface CreatedWebhook {
  readonly webhook: WebhookView;
  readonly secret: string;
}

/** A filter of the deliveries as an adapter received it (checked here). */
export interface DeliveriesRequest {
  readonly jobId?: string;
  readonly webhookId?: string;
  readonly status?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** Shortest secret accepted from a caller (32 hex digits are 128 bits). */
const MIN_SECRET_CHARS = 16;
const MAX_SECRET_CHARS = 256;
const DEFAULT_PAGE = 50;

/**
 * Server-wide webhooks (admins only: they see every job's events) and the deliveries list (admins
 * and viewers every delivery, users those of their own jobs). Adds and removals are audited.
 */
export class WebhookService {
  readonly #store: WebhookStore;
  readonly #audit: { sink: AuditSink; clock: Clock };
  /** Told after a webhook was added, so that jobs' events reach it from now on. */
  readonly #onChange: () => void;

  constructor(store: WebhookStore, options: { audit: AuditSink; clock?: Clock; onChange?: () => void }) {
    this.#store = store;
    this.#audit = { sink: options.audit, clock: options.clock ?? systemClock };
    this.#onChange = options.onChange ?? (() => {});
  }

  /** Adds a server-wide webhook; `secret` absent: a random one, returned this once. */
  add(who: Caller, input: { url?: unknown; events?: unknown; secret?: unknown }): Promise<CreatedWebhook> {
    return this.#audited(
      who,
      'webhook:add',
      (r) => r?.webhook.id ?? null,
      async () => {
        requireAdmin(who, 'add a webhook');
        const url = webhookUrl('url', input.url);
        const events: WebhookEvent[] = webhookEvents('events', input.events ?? ['job:finished']);
        let secret: string;
        if (input.secret === undefined || input.secret === null) {
          secret = `whsec_${randomBytes(24).toString('hex')}`;
        } else if (
          typeof input.secret !== 'string' ||
          input.secret.length < MIN_SECRET_CHARS ||
          input.secret.length > MAX_SECRET_CHARS
        ) {
          throw ValidationError.expected(
            'secret',
            `a string of ${MIN_SECRET_CHARS} to ${MAX_SECRET_CHARS} characters`,
            typeof input.secret === 'string' ? `${input.secret.length} characters` : input.secret,
          );
        } else {
          secret = input.secret;
        }
        const now = this.#audit.clock.now();
        const record: WebhookRecord = {
          id: newJobId(now.getTime()),
          url,
          events,
          secret,
          createdAt: now,
          createdBy: who.user,
        };
        await this.#store.addWebhook(record);
        this.#onChange();
        return { webhook: viewOf(record), secret };
      },
    );
  }

  async list(who: Caller): Promise<WebhookView[]> {
    requireAdmin(who, 'list webhooks');
    return (await this.#store.listWebhooks()).map(viewOf);
  }

  /** Removes a webhook; its pending deliveries fail at their next attempt. */
  remove(who: Caller, id: string): Promise<WebhookView> {
    return this.#audited(who, 'webhook:remove', id, async () => {
      requireAdmin(who, 'remove a webhook');
      const webhook = await this.#store.getWebhook(id);
      if (!webhook || !(await this.#store.removeWebhook(id))) {
        throw new JobworkerError('NOT_FOUND', `No webhook with id ${id}`);
      }
      return viewOf(webhook);
    });
  }

  /**
   * Deliveries, newest first: every one for admins; the jobs' own (`notify`) deliveries of every
   * job for viewers and of their own jobs for users. A server-wide webhook's deliveries are an
   * admin's alone: their URL is often the receiver's credential (a chat hook's), and
   * `GET /v1/webhooks` shows it to admins only.
   */
  async deliveries(who: Caller, request: DeliveriesRequest = {}): Promise<DeliveryPage> {
    const limit = request.limit ?? DEFAULT_PAGE;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw ValidationError.expected('limit', 'an integer from 1 to 1000', limit);
    }
    if (request.status !== undefined && !(DELIVERY_STATUSES as readonly string[]).includes(request.status)) {
      throw ValidationError.expected('status', `one of ${DELIVERY_STATUSES.join(', ')}`, request.status);
    }
    for (const field of ['jobId', 'webhookId', 'cursor'] as const) {
      const value = request[field];
      if (value !== undefined && !isJobId(value)) throw ValidationError.expected(field, 'a UUIDv7 id', value);
    }
    const everyJob = who.role === 'admin' || who.role === 'viewer';
    return this.#store.listDeliveries({
      limit,
      ...(everyJob ? {} : { owner: who.user }),
      ...(who.role === 'admin' ? {} : { notifyOnly: true }),
      ...(request.jobId === undefined ? {} : { jobId: request.jobId }),
      ...(request.webhookId === undefined ? {} : { webhookId: request.webhookId }),
      ...(request.status === undefined ? {} : { status: request.status as DeliveryStatus }),
      ...(request.cursor === undefined ? {} : { cursor: request.cursor }),
    });
  }

  #audited<T>(
    who: Caller,
    action: 'webhook:add' | 'webhook:remove',
    target: string | null | ((r: T | undefined) => string | null),
    run: () => Promise<T>,
  ): Promise<T> {
    return auditedCall(this.#audit, who, action, target, run);
  }
}

function viewOf(record: WebhookRecord): WebhookView {
  const { secret: _secret, ...view } = record;
  return view;
}
