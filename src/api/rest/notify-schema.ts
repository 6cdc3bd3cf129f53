import { WEBHOOK_EVENTS } from '../../core/webhook.ts';

/** Webhook event lists, in a job's `notify` and a server-wide webhook. */
export const NOTIFY_EVENTS_SCHEMA = {
  type: 'array',
  items: { type: 'string', enum: WEBHOOK_EVENTS },
  description: `Events to deliver: ${WEBHOOK_EVENTS.join(', ')}.`,
} as const;

/** The job spec's `notify` (JOB_SPEC_BODY and the Job both carry it). */
export const NOTIFY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', description: 'http(s) URL the events are POSTed to, signed (docs/webhooks.md).' },
    events: {
      ...NOTIFY_EVENTS_SCHEMA,
      description: `${NOTIFY_EVENTS_SCHEMA.description} Default \`["job:finished"]\`.`,
    },
  },
  description: "The job's own webhook (docs/webhooks.md).",
} as const;
