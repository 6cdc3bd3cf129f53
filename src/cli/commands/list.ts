import { type Command, InvalidArgumentError } from 'commander';
import type { ApiJob } from '../../client/api-types.ts';
import { JOB_WORKER_LIST_FILTERS, type JobWorkerListFilter } from '../../core/design-statuses.ts';
import { JOB_STATUSES } from '../../core/job.ts';
import {
  addCommonOptions,
  type CliContext,
  commonOptions,
  connect,
  printJson,
  stdoutStyle,
} from '../cli-context.ts';
import { formatAgo, formatDuration } from '../durations.ts';
import { UsageError } from '../errors.ts';
import { commandLine, runDuration } from '../job-format.ts';
import { parseListText, parsePageLimit } from '../option-parsers.ts';
import { writeTo } from '../output-writer.ts';
import { renderTable } from '../table.ts';
import { printable } from '../terminal-sanitizer.ts';

interface ListOptions {
  status?: string;
  name?: string;
  queue?: string;
  text?: string;
  label?: string;
  limit?: number;
  cursor?: string;
}

export function registerList(program: Command, ctx: CliContext): void {
  const command = program
    .command('list')
    .alias('ls')
    .summary('list jobs, newest first')
    .argument(
      '[filter]',
      "the Job Worker design's filter: all, running, failed, cancelled or done (every finished job); docs/compat.md",
    )
    .option(
      '--status <status>',
      `only jobs with this status, or one of several: running,queued (${JOB_STATUSES.join(', ')})`,
      parseStatuses,
    )
    .option('--name <name>', 'only jobs with this name')
    .option('--queue <queue>', 'only jobs of this queue')
    .option(
      '--text <text>',
      'only jobs whose name or command line contains this text, ignoring case (1 to 200 characters)',
      parseListText,
    )
    .option('--label <KEY=VALUE>', 'only jobs with this label (one)', parseLabelFilter)
    .option('--limit <n>', "at most this many jobs, 1 to 1000 (default: the server's)", parsePageLimit)
    .option('--cursor <cursor>', 'continue a previous list where it stopped');
  addCommonOptions(command).action(async (filter: string | undefined, options: ListOptions) => {
    const common = commonOptions(command);
    const status = filter === undefined ? options.status : filterStatuses(filter, options.status);
    const client = await connect(ctx, common);
    const page = await client.listJobs({
      status,
      name: options.name,
      queue: options.queue,
      text: options.text,
      label: options.label === undefined ? undefined : [options.label],
      limit: options.limit,
      cursor: options.cursor,
    });
    if (common.json === true) return printJson(ctx, page);
    if (page.jobs.length === 0) return writeTo(ctx.stdout, 'No jobs.\n');
    await writeTo(ctx.stdout, jobTable(ctx, page.jobs));
    if (page.nextCursor !== null && ctx.stdout.isTTY === true) {
      // The same filters again: the cursor alone would list every older job.
      const again = [
        ...(status === undefined ? [] : ['--status', status]),
        ...(options.name === undefined ? [] : ['--name', options.name]),
        ...(options.queue === undefined ? [] : ['--queue', options.queue]),
        ...(options.text === undefined ? [] : ['--text', options.text]),
        ...(options.label === undefined ? [] : ['--label', options.label]),
        ...(options.limit === undefined ? [] : ['--limit', String(options.limit)]),
        '--cursor',
        page.nextCursor,
      ];
      const hint = `More: jobworker list ${again.map(shellWord).join(' ')}`;
      await writeTo(ctx.stdout, stdoutStyle(ctx).dim(`${printable(hint)}\n`));
    }
  });
}

/** `word` as a shell reads it back: as it is when plain, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

function jobTable(ctx: CliContext, jobs: readonly ApiJob[]): string {
  const now = new Date();
  const style = stdoutStyle(ctx);
  const rows = jobs.map((job) => {
    const duration = runDuration(job, now);
    return [
      job.id,
      job.name === null ? '-' : printable(job.name),
      job.status,
      formatAgo(new Date(job.createdAt), now),
      duration === null ? '-' : formatDuration(duration),
      job.queue == null ? '-' : printable(job.queue),
      commandLine(job),
    ];
  });
  return renderTable(
    [
      { header: 'ID' },
      { header: 'NAME', shrink: true },
      { header: 'STATUS' },
      { header: 'AGE' },
      { header: 'DURATION', optional: true },
      // Left out first on a narrow terminal.
      { header: 'QUEUE', optional: true },
      { header: 'COMMAND', shrink: true },
    ],
    rows,
    {
      maxWidth: ctx.stdout.isTTY === true && (ctx.stdout.columns ?? 0) > 0 ? ctx.stdout.columns : undefined,
      decorate: (row, column, cell) => (column === 2 ? style.status(jobs[row]!.status, cell) : cell),
    },
  );
}

/** The statuses a Job Worker filter stands for, comma-separated; undefined for `all`. */
function filterStatuses(filter: string, status: string | undefined): string | undefined {
  if (!Object.hasOwn(JOB_WORKER_LIST_FILTERS, filter)) {
    throw new UsageError(
      `Expected the filter to be one of ${Object.keys(JOB_WORKER_LIST_FILTERS).join(', ')}, got ${JSON.stringify(filter)}`,
    );
  }
  if (status !== undefined) throw new UsageError(`Give ${filter} or --status, not both`);
  const statuses: readonly string[] = JOB_WORKER_LIST_FILTERS[filter as JobWorkerListFilter];
  return statuses.length === 0 ? undefined : statuses.join(',');
}

function parseStatuses(text: string): string {
  const statuses = text.split(',');
  for (const status of statuses) {
    if (!(JOB_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidArgumentError(
        `Expected statuses among ${JOB_STATUSES.join(', ')}, separated by commas.`,
      );
    }
  }
  return text;
}

/** `--label KEY=VALUE`: refused here (exit 2) rather than by the server (exit 1). */
function parseLabelFilter(text: string, previous: string | undefined): string {
  if (text.indexOf('=') <= 0)
    throw new InvalidArgumentError(`Expected KEY=VALUE, got ${JSON.stringify(text)}.`);
  // The server filters by one label (GET /v1/jobs `label`): keeping only the last one given would
  // list jobs that lack the others, and a script piping `list --json` into `rm` would delete them.
  if (previous !== undefined) {
    throw new InvalidArgumentError(
      `Expected one --label (jobs are filtered by one label), got a second after ${JSON.stringify(previous)}.`,
    );
  }
  return text;
}
