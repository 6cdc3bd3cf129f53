import { type Command, InvalidArgumentError } from 'commander';
import type { QueueSettings } from '../../client/api-types.ts';
import type { JobIsolation } from '../../core/job.ts';
import {
  addCommonOptions,
  type CliContext,
  commonOptions,
  connect,
  printJson,
  stdoutStyle,
} from '../cli-context.ts';
import { UsageError } from '../errors.ts';
import { parseIsolationJson } from '../isolation-options.ts';
import { addLimitOptions, limitsFromOptions, mergeLimits } from '../limit-options.ts';
import { writeTo } from '../output-writer.ts';
import { describeQueue, queueTable } from '../queue-format.ts';
import { parseQueueName } from '../schedule-options.ts';

interface SetOptions {
  concurrency?: Limit;
  maxWaiting?: Limit;
  paused?: boolean;
  clearLimits?: boolean;
  isolation?: JobIsolation | 'none';
}

export function registerQueue(program: Command, ctx: CliContext): void {
  const queue = program
    .command('queue')
    .summary('list, show and configure queues')
    .description(
      'Every job waits in a queue (`default` unless `start --queue` names one) until the queue has a ' +
        'free slot. A queue nobody configured has no limits.',
    );

  const list = queue.command('list').alias('ls').summary('every queue with settings or jobs');
  addCommonOptions(list).action(async () => {
    const common = commonOptions(list);
    const queues = await (await connect(ctx, common)).listQueues();
    if (common.json === true) return printJson(ctx, { queues });
    if (queues.length === 0) return writeTo(ctx.stdout, 'No queues.\n');
    const width = ctx.stdout.isTTY === true && (ctx.stdout.columns ?? 0) > 0 ? ctx.stdout.columns : undefined;
    await writeTo(ctx.stdout, queueTable(queues, width));
  });

  const show = queue
    .command('show')
    .summary("a queue's settings and counts")
    .argument('<name>', 'the queue', parseQueueName);
  addCommonOptions(show).action(async (name: string) => {
    const common = commonOptions(show);
    const found = await (await connect(ctx, common)).getQueue(name);
    if (common.json === true) return printJson(ctx, found);
    await writeTo(ctx.stdout, describeQueue(found, stdoutStyle(ctx)));
  });

  const set = queue
    .command('set')
    .summary("change a queue's settings (admins only)")
    .argument('<name>', 'the queue', parseQueueName)
    .option('--concurrency <n|none>', 'at most this many of its jobs run at once', limitParser(1))
    .option('--max-waiting <n|none>', 'at most this many of its jobs wait; more are refused', limitParser(0))
    .option('--paused', 'start nothing new from it')
    .option('--no-paused', 'start its jobs again')
    .option('--clear-limits', 'remove its default and maximum limits (before any given here)')
    .option(
      '--isolation <isolation>',
      'namespaces of its jobs whose spec names none: isolate (as start --isolate), none, or the JSON of an isolation object',
      parseIsolationJson,
    );
  addLimitOptions(set, 'default', 'limit its jobs get where they set none');
  addLimitOptions(set, 'max', 'limit none of its jobs may exceed');
  addCommonOptions(set).action(async (name: string, options: SetOptions) => {
    const common = commonOptions(set);
    const client = await connect(ctx, common);
    const settings: QueueSettings = {};
    const defaults = limitsFromOptions(options, 'default');
    const maxima = limitsFromOptions(options, 'max');
    if (defaults !== undefined || maxima !== undefined || options.clearLimits === true) {
      // Each flag changes its own limit: the others of the queue are kept (unless cleared).
      const current = options.clearLimits === true ? undefined : await client.getQueue(name);
      settings.defaultLimits = mergeLimits(current?.defaultLimits, defaults);
      settings.maxLimits = mergeLimits(current?.maxLimits, maxima);
    }
    if (options.concurrency !== undefined) settings.concurrency = limitValue(options.concurrency);
    if (options.maxWaiting !== undefined) settings.maxWaiting = limitValue(options.maxWaiting);
    if (options.paused !== undefined) settings.paused = options.paused;
    if (options.isolation !== undefined)
      settings.isolation = options.isolation === 'none' ? null : options.isolation;
    if (Object.keys(settings).length === 0) {
      throw new UsageError(
        'Expected at least one of --concurrency, --max-waiting, --paused, --no-paused, --isolation, --clear-limits, --default-<limit>, --max-<limit>',
      );
    }
    const updated = await client.setQueue(name, settings);
    if (common.json === true) return printJson(ctx, updated);
    await writeTo(ctx.stdout, describeQueue(updated, stdoutStyle(ctx)));
  });

  for (const verb of ['pause', 'resume'] as const) {
    const sub = queue
      .command(verb)
      .summary(
        verb === 'pause'
          ? 'start nothing new from a queue; running jobs go on'
          : 'start the jobs of a paused queue again',
      )
      .argument('<name>', 'the queue', parseQueueName);
    addCommonOptions(sub).action(async (name: string) => {
      const common = commonOptions(sub);
      const client = await connect(ctx, common);
      const answer = verb === 'pause' ? await client.pauseQueue(name) : await client.resumeQueue(name);
      if (common.json === true) return printJson(ctx, answer);
      await writeTo(ctx.stdout, `${verb === 'pause' ? 'paused' : 'resumed'} queue ${name}\n`);
    });
  }
}

/**
 * A limit as given: a whole number, or `none`. Not null for `none`: commander turns a parser's
 * null into an empty string.
 */
type Limit = number | 'none';

const limitValue = (limit: Limit): number | null => (limit === 'none' ? null : limit);

/** A whole number from `min`, or `none` for no limit. */
function limitParser(min: number): (text: string) => Limit {
  return (text) => {
    if (text === 'none') return 'none';
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(
        `Expected a whole number from ${min}, or none, got ${JSON.stringify(text)}.`,
      );
    }
    return n;
  };
}
