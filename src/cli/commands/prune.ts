import { type Command, InvalidArgumentError } from 'commander';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { formatDuration, parseDuration } from '../durations.ts';
import { writeTo } from '../output-writer.ts';

const DAY_MS = 86_400_000;

/** A duration as `parseDuration` takes it, or whole days (`30d`): ages are often counted in days. */
export function parseAge(text: string): number {
  const days = /^([0-9]{1,6})d$/.exec(text.trim());
  if (days) return Number(days[1]) * DAY_MS;
  try {
    return parseDuration(text);
  } catch {
    throw new InvalidArgumentError('Expected a duration like 30d, 12h, 5m, 10s or a number of seconds.');
  }
}

/** `prune [--before DURATION]`: delete finished jobs now, rather than waiting for retention. */
export function registerPrune(program: Command, ctx: CliContext): void {
  const command = program
    .command('prune')
    .summary('delete finished jobs and their output')
    .description(
      "Delete finished jobs with their output, for good: your own, or every user's for an admin. " +
        'Without --before, every finished job; with it, those that finished at least that long ago. ' +
        'Queued, running and paused jobs stay, and so do finished jobs a queued job waits for. ' +
        'The server also deletes old jobs by itself (serve --keep-jobs, --keep-for).',
    )
    .option('--before <duration>', 'only jobs that finished at least this long ago: 30d, 12h, 5m', parseAge);
  addCommonOptions(command).action(async (options: { before?: number }) => {
    const common = commonOptions(command);
    const client = await connect(ctx, common);
    const deleted = await client.prune(options.before ?? 0);
    if (common.json === true) return printJson(ctx, { deleted });
    const when =
      options.before === undefined ? '' : ` that finished over ${formatDuration(options.before)} ago`;
    await writeTo(ctx.stdout, `deleted ${deleted} finished job${deleted === 1 ? '' : 's'}${when}\n`);
  });
}
