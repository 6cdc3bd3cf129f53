import { InvalidArgumentError } from 'commander';
import { formatDuration } from '../core/format-duration.ts';

export { formatDuration };

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * Parses `500ms`, `10s`, `5m`, `1h` or a plain number of seconds into milliseconds. Throws
 * commander's `InvalidArgumentError`, which becomes a usage error naming the option.
 */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  const unit = (match?.[2] ?? 's') as keyof typeof UNIT_MS;
  const ms = match === null ? Number.NaN : Math.round(Number(match[1]) * UNIT_MS[unit]);
  if (!Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError(`Expected a duration like 500ms, 10s, 5m, 1h or a number of seconds.`);
  }
  return ms;
}

export function parsePositiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new InvalidArgumentError('Expected a duration greater than zero.');
  return ms;
}

/** "just now", "12s ago", "3m ago", "2h ago", "4d ago". */
export function formatAgo(at: Date, now: Date): string {
  const ms = now.getTime() - at.getTime();
  if (ms < 1000) return 'just now';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}
