import type { ApiJob } from '../client/api-types.ts';
import type { JobUsage } from '../core/job.ts';
import { describeLimits } from '../core/limits.ts';
import { formatAgo, formatDuration } from './durations.ts';
import type { Style } from './style.ts';
import { printable } from './terminal-sanitizer.ts';

/** `CPU 1.25 s (throttled 0.5 s), memory peak 64 MiB, IO read 0 B written 12 MiB`. */
function describeUsage(usage: JobUsage): string {
  const parts: string[] = [];
  if (usage.cpuSeconds !== null) {
    const throttled = usage.cpuThrottledSeconds ? ` (throttled ${seconds(usage.cpuThrottledSeconds)})` : '';
    parts.push(`CPU ${seconds(usage.cpuSeconds)}${throttled}`);
  }
  if (usage.memoryPeakBytes !== null) parts.push(`memory peak ${formatBytes(usage.memoryPeakBytes)}`);
  if (usage.ioReadBytes !== null || usage.ioWriteBytes !== null) {
    parts.push(
      `IO read ${formatBytes(usage.ioReadBytes ?? 0)} written ${formatBytes(usage.ioWriteBytes ?? 0)}`,
    );
  }
  if (usage.oomKills > 0) parts.push(`${usage.oomKills} OOM kill${usage.oomKills === 1 ? '' : 's'}`);
  if (usage.pidsLimitHits > 0)
    parts.push(
      `${usage.pidsLimitHits} fork${usage.pidsLimitHits === 1 ? '' : 's'} refused at its pids limit`,
    );
  return parts.join(', ') || 'not measured';
}

const seconds = (s: number) => `${Number(s.toFixed(2))} s`;

/** The job's command line as a shell user would type it, on one safe line. */
export function commandLine(job: ApiJob): string {
  const words = job.shell
    ? [job.command, ...job.args.map(shellQuote)]
    : [job.command, ...job.args].map(shellQuote);
  return printable(words.join(' '));
}

function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_\-+=.,/:@%^]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** How long the job ran, or has been running: null before it started. */
export function runDuration(job: ApiJob, now: Date): number | null {
  if (job.startedAt === null) return null;
  const end = job.finishedAt === null ? now : new Date(job.finishedAt);
  return end.getTime() - new Date(job.startedAt).getTime();
}

/** The human form of `status`: one `Key  value` line each. */
export function describeJob(job: ApiJob, style: Style, now: Date): string {
  const when = (iso: string | null) => (iso === null ? '-' : `${formatWhen(new Date(iso), now)} (${iso})`);
  const duration = runDuration(job, now);
  const rows: [string, string][] = [
    ['ID', job.id],
    ['Name', job.name === null ? '-' : printable(job.name)],
    ['Status', statusLine(job, style)],
  ];
  // An older server sends none of the queue fields: show only what is there.
  if (job.queue != null) {
    rows.push(['Queue', `${printable(job.queue)}${job.priority ? `, priority ${job.priority}` : ''}`]);
  }
  if (job.status === 'queued' && job.waitingFor != null) rows.push(['Waiting for', waitingFor(job)]);
  if (job.after != null && job.after.length > 0) rows.push(['After', job.after.join(', ')]);
  if (job.runAt != null && job.startedAt === null) rows.push(['Not before', when(job.runAt)]);
  if (job.maxAttempts != null && job.maxAttempts > 1) {
    rows.push(['Attempt', `${job.attempt} of ${job.maxAttempts}`]);
  }
  if (job.retryOf != null) rows.push(['Retry of', job.retryOf]);
  if (job.retriedAs != null) rows.push(['Retried as', job.retriedAs]);
  if (job.dedupeKey != null) {
    const scope = job.dedupeScope != null && job.dedupeScope !== job.owner ? job.dedupeScope : undefined;
    const among = scope === undefined ? '' : ` (among ${printable(scope)}'s jobs)`;
    rows.push(['Dedupe key', `${printable(job.dedupeKey)}${among}`]);
  }
  rows.push(
    ['Command', commandLine(job)],
    ['Cwd', printable(job.cwd)],
    ['Owner', printable(job.owner)],
    ...(job.account == null
      ? []
      : [
          ['Account', `${printable(job.account.name)} (uid ${job.account.uid}, gid ${job.account.gid})`] as [
            string,
            string,
          ],
        ]),
    ['Created', when(job.createdAt)],
    ['Started', when(job.startedAt)],
    ['Finished', when(job.finishedAt)],
    ['Duration', duration === null ? '-' : formatDuration(duration)],
  );
  if (job.timeoutMs != null) rows.push(['Timeout', formatDuration(job.timeoutMs)]);
  if (job.limits && Object.keys(job.limits).length > 0) rows.push(['Limits', describeLimits(job.limits)]);
  if (job.usage) rows.push(['Usage', describeUsage(job.usage)]);
  if (job.pausedAt != null) rows.push(['Paused', when(job.pausedAt)]);
  if (job.stopRequestedAt !== null) rows.push(['Stop asked', when(job.stopRequestedAt)]);
  if (job.reason !== null) rows.push(['Result', printable(job.reason)]);
  if (job.exitCode !== null) rows.push(['Exit code', String(job.exitCode)]);
  if (job.signal !== null) rows.push(['Signal', job.signal]);
  rows.push([
    'Output',
    `stdout ${formatBytes(job.outputBytes.stdout)}, stderr ${formatBytes(job.outputBytes.stderr)}`,
  ]);
  const labels = Object.entries(job.labels);
  if (labels.length > 0) rows.push(['Labels', printable(labels.map(([k, v]) => `${k}=${v}`).join(', '))]);
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${style.bold(key.padEnd(width))}  ${value}\n`).join('');
}

function statusLine(job: ApiJob, style: Style): string {
  const live = job.status === 'running' || job.status === 'paused';
  if (!live || job.pid === null) return style.status(job.status);
  return `${style.status(job.status)} (pid ${job.pid})${job.stopRequestedAt === null ? '' : ', stopping'}`;
}

function waitingFor(job: ApiJob): string {
  switch (job.waitingFor) {
    case 'dependencies':
      return 'dependencies (the jobs in After to succeed)';
    case 'time':
      return 'time (see Not before)';
    case 'queue':
      return `queue (${printable(job.queue)} is full or paused, or the server drains)`;
    default:
      return printable(String(job.waitingFor));
  }
}

/** "3m ago" for a past time, "in 4m 59s" for a future one (a `runAt`). */
function formatWhen(at: Date, now: Date): string {
  const ahead = at.getTime() - now.getTime();
  return ahead >= 1000 ? `in ${formatDuration(ahead)}` : formatAgo(at, now);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
