import { ValidationError } from './errors.ts';

/**
 * Webhooks (docs/webhooks.md). Glossary:
 * - **event**: a job's lifecycle moment, named `noun:verb` like the engine's own events.
 * - **notify**: a job's own webhook, given in its spec; signed with the server's signing secret.
 * - **webhook**: a server-wide one an admin added; it gets every job's events it names, signed
 *   with its own secret.
 * - **delivery**: one event for one target: a POST retried until it is answered 2xx or gives up.
 */
export const WEBHOOK_EVENTS = ['job:queued', 'job:started', 'job:progress', 'job:finished'] as const;

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Where a delivery is: waiting for (another) attempt, answered 2xx, or given up. */
export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;

export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** A job's own webhook (`notify` in its spec). */
export interface JobNotify {
  /** `http://` or `https://` URL the events are POSTed to. */
  readonly url: string;
  /** The events it wants; `["job:finished"]` when the spec names none. */
  readonly events: readonly WebhookEvent[];
}

/** Longest webhook URL accepted. */
export const MAX_WEBHOOK_URL_CHARS = 2048;

/** The events of a notify that names none. */
export const DEFAULT_NOTIFY_EVENTS: readonly WebhookEvent[] = ['job:finished'];

/**
 * Checks a webhook URL: absolute `http:` or `https:`, with a host, no credentials in it (they would
 * be shown in listings), at most 2048 characters. Which addresses it may reach is decided when it is
 * delivered (see `WebhookAddressPolicy`), since a name may resolve to another address later.
 */
export function webhookUrl(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_WEBHOOK_URL_CHARS) {
    throw ValidationError.expected(
      field,
      `an http(s) URL of at most ${MAX_WEBHOOK_URL_CHARS} characters`,
      value,
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw ValidationError.expected(field, 'an absolute http(s) URL', value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw ValidationError.expected(field, 'an http: or https: URL', value);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValidationError(
      field,
      `Expected \`${field}\` without credentials in it (use the signature to authenticate)`,
    );
  }
  return url.toString();
}

/** Checks a list of event names: a non-empty array of `WEBHOOK_EVENTS`, each once. */
export function webhookEvents(field: string, value: unknown): WebhookEvent[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw ValidationError.expected(field, `a non-empty array of ${WEBHOOK_EVENTS.join(', ')}`, value);
  }
  const out: WebhookEvent[] = [];
  for (const [i, event] of value.entries()) {
    if (typeof event !== 'string' || !(WEBHOOK_EVENTS as readonly string[]).includes(event)) {
      throw ValidationError.expected(`${field}[${i}]`, `one of ${WEBHOOK_EVENTS.join(', ')}`, event);
    }
    if (!out.includes(event as WebhookEvent)) out.push(event as WebhookEvent);
  }
  return out;
}

/** Checks a spec's `notify`: `{ url, events? }`. */
export function jobNotify(value: unknown): JobNotify {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw ValidationError.expected('notify', 'an object `{ url, events }`', value);
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (key !== 'url' && key !== 'events')
      throw new ValidationError(`notify.${key}`, `Unknown field \`notify.${key}\``);
  }
  return {
    url: webhookUrl('notify.url', input.url),
    events:
      input.events === undefined ? [...DEFAULT_NOTIFY_EVENTS] : webhookEvents('notify.events', input.events),
  };
}
