/** How a failed delivery is tried again (docs/webhooks.md, "Retries"). */
export interface WebhookRetryPolicy {
  /** Wait before the second attempt, before jitter. Default 10 s. */
  readonly initialMs: number;
  /** Longest wait between two attempts, before jitter. Default 1 h. */
  readonly maxMs: number;
  /**
   * The last attempt is made this long after the delivery was made; if it fails too, the delivery
   * gives up (`failed`). Default 24 h.
   */
  readonly maxAgeMs: number;
}

export const WEBHOOK_RETRY_DEFAULTS = {
  initialMs: 10_000,
  maxMs: 3_600_000,
  maxAgeMs: 24 * 3_600_000,
} as const satisfies WebhookRetryPolicy;

/**
 * The wait after the `failures`-th failed attempt: doubling from `initialMs` up to `maxMs`, then
 * "equal jitter" (a random point in its upper half), so that many deliveries that failed together
 * (a receiver that was down) do not all come back at the same instant. `random` is injectable for
 * tests; it returns a number in [0, 1).
 */
export function retryDelayMs(
  policy: WebhookRetryPolicy,
  failures: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 40));
  return Math.round(base / 2 + (base / 2) * random());
}
