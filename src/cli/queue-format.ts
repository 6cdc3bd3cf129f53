import type { ApiQueue } from '../client/api-types.ts';
import { describeLimits } from '../core/limits.ts';
import type { Style } from './style.ts';
import { renderTable } from './table.ts';
import { printable } from './terminal-sanitizer.ts';

const limit = (n: number | null) => (n === null ? 'none' : String(n));

/** `queue list`: NAME CONCURRENCY MAX-WAITING PAUSED RUNNING WAITING. */
export function queueTable(queues: readonly ApiQueue[], maxWidth?: number): string {
  return renderTable(
    [
      { header: 'NAME', shrink: true },
      { header: 'CONCURRENCY' },
      { header: 'MAX-WAITING' },
      { header: 'PAUSED' },
      { header: 'RUNNING' },
      { header: 'WAITING' },
    ],
    queues.map((q) => [
      printable(q.name),
      limit(q.concurrency),
      limit(q.maxWaiting),
      q.paused ? 'yes' : 'no',
      String(q.running),
      String(q.waiting),
    ]),
    maxWidth === undefined ? {} : { maxWidth },
  );
}

/** `queue show`: one `Key  value` line each. */
export function describeQueue(queue: ApiQueue, style: Style): string {
  const rows: [string, string][] = [
    ['Name', printable(queue.name)],
    ['Concurrency', queue.concurrency === null ? 'no limit' : String(queue.concurrency)],
    ['Max waiting', queue.maxWaiting === null ? 'no limit' : String(queue.maxWaiting)],
    ['Paused', queue.paused ? 'yes: nothing new starts' : 'no'],
    ['Default limits', describeLimits(queue.defaultLimits ?? {})],
    ['Max limits', describeLimits(queue.maxLimits ?? {})],
    [
      'Isolation',
      queue.isolation ? JSON.stringify(queue.isolation) : "none (the user's or the server's default)",
    ],
    ['Running', String(queue.running)],
    ['Waiting', String(queue.waiting)],
  ];
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${style.bold(key.padEnd(width))}  ${value}\n`).join('');
}
