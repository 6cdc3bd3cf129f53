import { WEBHOOK_EVENTS } from '../../core/webhook.ts';
import { DELIVERY_STATUSES } from '../../store/webhook-store.ts';
import { NOTIFY_EVENTS_SCHEMA } from './notify-schema.ts';
import { errors } from './schemas.ts';

/** Schemas of `/v1/webhooks` and `/metrics` (docs/webhooks.md, docs/metrics.md). */

const nullable = (type: string, extra: object = {}) => ({ type: [type, 'null'], ...extra });
const events = NOTIFY_EVENTS_SCHEMA;

const webhook = {
  type: 'object',
  description: 'A server-wide webhook (never its secret).',
  additionalProperties: false,
  required: ['id', 'url', 'events', 'createdAt', 'createdBy'],
  properties: {
    id: { type: 'string' },
    url: { type: 'string' },
    events,
    createdAt: { type: 'string', format: 'date-time' },
    createdBy: { type: 'string', description: 'The admin who added it.' },
  },
} as const;

const delivery = {
  type: 'object',
  description: 'One event for one target, with its attempts.',
  additionalProperties: false,
  required: [
    'id',
    'event',
    'jobId',
    'webhookId',
    'url',
    'status',
    'attempts',
    'createdAt',
    'nextAttemptAt',
    'lastAttemptAt',
    'lastStatus',
    'lastError',
  ],
  properties: {
    id: { type: 'string', description: 'Also the `Jobworker-Delivery` header: the same on every attempt.' },
    event: { type: 'string', enum: WEBHOOK_EVENTS },
    jobId: { type: 'string' },
    webhookId: nullable('string', {
      description: "The server-wide webhook; null for the job's own `notify`.",
    }),
    url: { type: 'string' },
    status: { type: 'string', enum: DELIVERY_STATUSES },
    attempts: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    nextAttemptAt: nullable('string', {
      format: 'date-time',
      description:
        'When the next attempt is due; null once delivered or failed. While an attempt is in flight, the end of its claim: when another node takes it over, should the one attempting it die first.',
    }),
    lastAttemptAt: nullable('string', { format: 'date-time' }),
    lastStatus: nullable('integer', { description: 'HTTP status of the last answer; null when none came.' }),
    lastError: nullable('string', { description: 'Why the last attempt failed.' }),
  },
} as const;

export const ADD_WEBHOOK_SCHEMA = {
  operationId: 'addWebhook',
  summary: "Add a server-wide webhook: every job's events it names (admins)",
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      url: { type: 'string', description: 'http(s) URL.' },
      events: { ...events, description: `${events.description} Default \`["job:finished"]\`.` },
      secret: { type: 'string', description: 'Signing secret, 16 to 256 characters; default a random one.' },
    },
  },
  response: {
    201: {
      type: 'object',
      additionalProperties: false,
      required: ['webhook', 'secret'],
      properties: {
        webhook,
        secret: { type: 'string', description: 'The signing secret, shown this once.' },
      },
    },
    ...errors(400, 403),
  },
} as const;

export const LIST_WEBHOOKS_SCHEMA = {
  operationId: 'listWebhooks',
  summary: 'List the server-wide webhooks (admins)',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['webhooks'],
      properties: { webhooks: { type: 'array', items: webhook } },
    },
    ...errors(403),
  },
} as const;

export const REMOVE_WEBHOOK_SCHEMA = {
  operationId: 'removeWebhook',
  summary: 'Remove a server-wide webhook (admins); its pending deliveries fail',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['id'],
    properties: { id: { type: 'string' } },
  },
  response: { 200: webhook, ...errors(403, 404) },
} as const;

export const LIST_DELIVERIES_SCHEMA = {
  operationId: 'listWebhookDeliveries',
  summary:
    "Webhook deliveries, newest first: all for admins; the jobs' own (notify) deliveries, every job's for viewers, a user's own jobs' for a user",
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      jobId: { type: 'string' },
      webhookId: { type: 'string' },
      status: { type: 'string', enum: DELIVERY_STATUSES },
      limit: { type: 'integer', description: '1 to 1000; default 50.' },
      cursor: { type: 'string', description: '`nextCursor` of the previous page.' },
    },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['deliveries', 'nextCursor'],
      properties: {
        deliveries: { type: 'array', items: delivery },
        nextCursor: nullable('string'),
      },
    },
    ...errors(400),
  },
} as const;

export const METRICS_SCHEMA = {
  operationId: 'scrapeMetrics',
  summary: 'Prometheus metrics, text format (admins, or the metrics token: docs/metrics.md)',
  response: errors(403),
} as const;

/** The 200 of `/metrics` in the OpenAPI document (it is text, not JSON). */
export const METRICS_OPENAPI_RESPONSE = {
  200: {
    description: 'The metrics in the Prometheus text exposition format (docs/metrics.md)',
    content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
  },
} as const;
