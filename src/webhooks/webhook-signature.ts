import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries a delivery's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'jobworker-signature';

/**
 * Signs a delivery: HMAC-SHA256 with `secret` over `${t}.${body}`, where `t` is the attempt's Unix
 * time in seconds. The time is inside the signed text so that a receiver can refuse an old request
 * replayed later (docs/webhooks.md has the receiver's side).
 */
export function signWebhook(secret: string, at: Date, body: string): string {
  const t = Math.floor(at.getTime() / 1000);
  const v1 = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

/**
 * The receiver's check (the docs show the same in a few lines): true when `header` signs `body`
 * with `secret` and its time is within `toleranceSec` of `now`.
 */
export function verifyWebhookSignature(
  header: string,
  body: string,
  secret: string,
  now: Date,
  toleranceSec = 300,
): boolean {
  const parts = new Map(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || Math.abs(now.getTime() / 1000 - t) > toleranceSec) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
