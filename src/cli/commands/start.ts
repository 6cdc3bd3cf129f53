import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import type { ApiClient } from '../../client/api-client.ts';
import type { CreateJobBody } from '../../client/api-types.ts';
import {
  addCommonOptions,
  type CliContext,
  collect,
  commonOptions,
  connect,
  note,
  printJson,
} from '../cli-context.ts';
import { parseDuration, parsePositiveDuration } from '../durations.ts';
import { UsageError } from '../errors.ts';
import { addIsolationOptions, type IsolationOptions, isolationBody } from '../isolation-options.ts';
import { resolveJobId } from '../job-ref.ts';
import { addLimitOptions, limitsFromOptions } from '../limit-options.ts';
import { collectWebhookEvent } from '../option-parsers.ts';
import { writeTo } from '../output-writer.ts';
import {
  collectJobRef,
  parseBackoff,
  parseDedupeKey,
  parsePriority,
  parseQueueName,
  parseRetries,
  parseTime,
  type ScheduleOptions,
  scheduleBody,
} from '../schedule-options.ts';
import { reconnectForFromEnv, showOutput } from '../show-output.ts';
import { printable } from '../terminal-sanitizer.ts';
import { workerctlForm, workerctlLines } from '../workerctl-form.ts';

interface StartOptions extends ScheduleOptions, IsolationOptions {
  name?: string;
  env?: string[];
  label?: string[];
  cwd?: string;
  timeout?: number;
  shell?: boolean;
  follow?: boolean;
  raw?: boolean;
  asRoot?: boolean;
  notify?: string;
  notifyEvent?: string[];
}

export function registerStart(program: Command, ctx: CliContext): void {
  const command = program
    .command('start')
    .summary('start a job')
    .description(
      'Start a job and print its id. `start -- CMD ARGS...` runs CMD with ARGS as they are, with no shell; ' +
        '`start "ls -l | wc"` (one argument containing whitespace) runs it with /bin/sh -c. ' +
        'Options go before the command: everything from the command on is passed to it.',
    )
    .usage('[options] [--] <command> [args...]')
    .argument('<command>', 'the program to run, or one shell command line')
    .argument('[args...]', 'its arguments, passed as they are')
    .option('--name <name>', 'a name for lists and filters')
    .option(
      '-e, --env <NAME=VALUE>',
      'set a variable in the job environment (repeatable; NAME alone copies it from here)',
      collect,
    )
    .option('--label <KEY=VALUE>', 'a label for filtering (repeatable)', collect)
    .option(
      '--cwd <dir>',
      "working directory (default: the current one for a local server, else the server's)",
    )
    .option(
      '--timeout <duration>',
      'end the job as timed_out after this long (500ms, 10s, 5m, 1h)',
      parsePositiveDuration,
    )
    .option('--queue <name>', 'the queue to wait in (default: default)', parseQueueName)
    .option(
      '--priority <n>',
      'from -1000 to 1000; higher starts first in its queue (default: 0)',
      parsePriority,
    )
    .option(
      '--after <job>',
      'start only once this job succeeded (repeatable; its id, 6+ characters of it, its name, or last)',
      collectJobRef,
    )
    .addOption(
      new Option('--delay <duration>', 'do not start before this long from now (10s, 5m, 1h)')
        .argParser(parseDuration)
        .conflicts('at'),
    )
    .option('--at <time>', 'do not start before this ISO 8601 time (local without a zone)', parseTime)
    .option('--retry <n>', 'run it again up to n times after it failed or timed out', parseRetries)
    .option(
      '--retry-backoff <initial[,factor[,max]]>',
      'with --retry: the waits between attempts (default: 1s,2,5m)',
      parseBackoff,
    )
    .option('--dedupe <key>', 'refuse it while a job with this key is queued or running', parseDedupeKey)
    .addOption(
      new Option('--on-duplicate <what>', 'with --dedupe: reject (exit 1) or return the job there').choices([
        'reject',
        'return',
      ]),
    )
    .option('--shell', 'run <command> with /bin/sh -c even without whitespace in it')
    .option('--as-root', "admins: run it as root instead of the admin's own account")
    .option('--notify <url>', 'POST its events to this URL, signed (docs/webhooks.md)')
    .option(
      '--notify-event <event>',
      'with --notify: job:queued, job:started, job:progress or job:finished (repeatable; default: job:finished)',
      collectWebhookEvent,
    )
    .option('-f, --follow', "print the job's output until it ends, then exit with its exit code")
    .option('--raw', 'with --follow: keep escape sequences when printing to a terminal')
    .passThroughOptions();
  // Limits (docs/isolation.md): --cpu, --memory, --memory-swap, --io-*, --pids.
  addLimitOptions(command);
  addIsolationOptions(command);
  addCommonOptions(command).action(async (cmd: string, args: string[], options: StartOptions) => {
    const common = commonOptions(command);
    const schedule = scheduleBody(options);
    const limits = limitsFromOptions(options);
    // Checked before the job is made: a bad value found after it would leave a job running that
    // the command reported as a usage error.
    const reconnectForMs = options.follow === true ? reconnectForFromEnv(ctx.env) : undefined;
    if (options.notifyEvent !== undefined && options.notify === undefined) {
      throw new UsageError('--notify-event needs --notify URL');
    }
    const client = await connect(ctx, common);
    if (schedule.after !== undefined) schedule.after = await resolveAfter(client, schedule.after);
    const body: CreateJobBody = { command: cmd, args, ...schedule };
    if (options.shell === true || (args.length === 0 && /\s/.test(cmd))) body.shell = true;
    if (body.args?.length === 0) delete body.args;
    if (options.asRoot === true) body.runAsRoot = true;
    if (options.notify !== undefined) {
      body.notify = {
        url: options.notify,
        ...(options.notifyEvent === undefined ? {} : { events: options.notifyEvent }),
      };
    }
    if (options.name !== undefined) body.name = options.name;
    if (options.env !== undefined) body.env = parseEnv(options.env, ctx);
    if (options.label !== undefined) body.labels = parsePairs('--label', options.label);
    if (options.cwd !== undefined) body.cwd = resolve(ctx.cwd, options.cwd);
    else if (client.connection.local) body.cwd = ctx.cwd;
    if (options.timeout !== undefined) body.timeoutMs = options.timeout;
    if (limits !== undefined) body.limits = limits;
    const isolation = isolationBody(options);
    if (isolation !== undefined) body.isolation = isolation;

    const { job, created } = await client.createJob(body);
    if (!created && common.json !== true) {
      note(
        ctx,
        `job ${job.id} with --dedupe ${printable(job.dedupeKey ?? '')} is already ${job.status}; no new job`,
      );
    } else if (job.status === 'queued' && job.waitingFor != null && common.json !== true) {
      note(ctx, `job ${job.id} is queued, waiting for ${job.waitingFor}`);
    } else if (job.status === 'cancelled' && common.json !== true) {
      note(ctx, `job ${job.id} was cancelled: ${printable(job.reason ?? '')}`);
    }
    if (options.follow !== true) {
      if (common.json === true) await printJson(ctx, job);
      // The workerctl design's answer: a job just made is `created`, whatever it is a moment later.
      else if (workerctlForm(ctx))
        await writeTo(ctx.stdout, workerctlLines(job, created ? 'created' : undefined));
      else await writeTo(ctx.stdout, `${job.id}\n`);
      return;
    }
    if (common.json !== true) note(ctx, `started job ${job.id}`);
    ctx.exitCode = await showOutput(ctx, client, job.id, {
      view: 'all',
      follow: true,
      raw: options.raw === true,
      json: common.json === true,
      ...(reconnectForMs === undefined ? {} : { reconnectForMs }),
      reconnectSetting: 'JOBWORKER_RECONNECT_FOR',
      made: true,
    });
  });
}

/** The ids of the `--after` jobs, resolved on the server; two names for one job are one mistake. */
async function resolveAfter(client: ApiClient, refs: readonly string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const ref of refs) {
    const id = await resolveJobId(client, ref);
    if (ids.includes(id))
      throw new UsageError(`--after: job ${id} is given twice (as ${JSON.stringify(ref)})`);
    ids.push(id);
  }
  return ids;
}

function parseEnv(entries: readonly string[], ctx: CliContext): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq === -1) {
      const value = ctx.env.variables[entry];
      if (value === undefined) {
        throw new UsageError(`--env ${entry}: ${entry} is not set here (use --env ${entry}=VALUE)`);
      }
      env[entry] = value;
    } else if (eq === 0) {
      throw new UsageError(`Expected --env NAME=VALUE, got ${JSON.stringify(entry)}`);
    } else {
      env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
  }
  return env;
}

function parsePairs(option: string, entries: readonly string[]): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`Expected ${option} KEY=VALUE, got ${JSON.stringify(entry)}`);
    pairs[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return pairs;
}
