import { InvalidArgumentError } from 'commander';
import { WEBHOOK_EVENTS } from '../core/webhook.ts';

/**
 * Option values the server would refuse, checked before anything is sent: a bad one is a usage
 * error (exit 2) naming the option, as docs/cli.md promises, not the server's 400 (exit 1).
 */

/** `--limit` of a paged list: a whole number from 1 to 1000 (the API's page bounds). */
export function parsePageLimit(text: string): number {
  const n = Number(text);
  if (!/^[0-9]{1,4}$/.test(text) || n < 1 || n > 1000) {
    throw new InvalidArgumentError(`Expected a whole number from 1 to 1000, got ${JSON.stringify(text)}.`);
  }
  return n;
}

/** `--text` of the job list: 1 to 200 characters. */
export function parseListText(text: string): string {
  if (text.length < 1 || text.length > 200) {
    throw new InvalidArgumentError(`Expected 1 to 200 characters, got ${text.length}.`);
  }
  return text;
}

/** `--notify-event`, repeatable: one of the webhook events each time. */
export function collectWebhookEvent(text: string, previous: string[] = []): string[] {
  if (!(WEBHOOK_EVENTS as readonly string[]).includes(text)) {
    throw new InvalidArgumentError(
      `Expected one of ${WEBHOOK_EVENTS.join(', ')}, got ${JSON.stringify(text)}.`,
    );
  }
  return [...previous, text];
}
