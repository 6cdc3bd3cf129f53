import { type Command, Option } from 'commander';
import type { OutputView } from '../../client/api-types.ts';
import { addCommonOptions, type CliContext, commonOptions, connect } from '../cli-context.ts';
import { parsePositiveDuration } from '../durations.ts';
import { UsageError } from '../errors.ts';
import { JOB_REF_HELP, resolveJobId } from '../job-ref.ts';
import { reconnectForFromEnv, showOutput } from '../show-output.ts';

interface LogsOptions {
  follow?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  raw?: boolean;
  reconnectFor?: number;
}

/** The views the Job Worker design's `logs` names before the job. */
const VIEWS = ['all', 'stdout', 'stderr'] as const;

export function registerLogs(program: Command, ctx: CliContext): void {
  const command = program
    .command('logs')
    .summary("print a job's output")
    .description(
      "Print a job's output from its first byte. By default both streams, in the order the server " +
        "observed them: the job's stdout to stdout and its stderr to stderr. With --stdout or --stderr, " +
        'that one stream, to stdout. To a terminal, escape sequences that could act on it (title, ' +
        'clipboard, cursor moves) are removed unless --raw; to a pipe or file, the bytes are exact. ' +
        "The Job Worker design's form `logs (all|stdout|stderr) <job> [--follow]` names the view first.",
    )
    .usage('[options] [all|stdout|stderr] <job>')
    .argument('<job>', JOB_REF_HELP)
    .argument('[job]', 'with a view first (`logs stdout ID`): the job')
    .option('-f, --follow', 'keep printing until the job ends, then exit with its exit code')
    .addOption(new Option('--stdout', "only the job's stdout").conflicts('stderr'))
    .addOption(new Option('--stderr', "only the job's stderr (printed to stdout)"))
    .option('--raw', 'keep escape sequences when printing to a terminal')
    .option(
      '--reconnect-for <duration>',
      'with -f: how long to keep reconnecting while the server is unreachable (default: $JOBWORKER_RECONNECT_FOR, else 60s)',
      parsePositiveDuration,
    );
  addCommonOptions(command).action(
    async (first: string, second: string | undefined, options: LogsOptions) => {
      const common = commonOptions(command);
      let view: OutputView = options.stdout === true ? 'stdout' : options.stderr === true ? 'stderr' : 'all';
      let id = first;
      if (second !== undefined) {
        if (!(VIEWS as readonly string[]).includes(first)) {
          throw new UsageError(
            `Expected \`logs [all|stdout|stderr] <job>\`, got ${JSON.stringify(first)} before the job`,
          );
        }
        if (options.stdout === true || options.stderr === true) {
          throw new UsageError(`Give the view once: ${first} or --${view}, not both`);
        }
        view = first as OutputView;
        id = second;
      }
      // Only a follow reconnects: without -f the setting is not read (a bad one is no error).
      const reconnectForMs =
        options.follow === true ? (options.reconnectFor ?? reconnectForFromEnv(ctx.env)) : undefined;
      const client = await connect(ctx, common);
      ctx.exitCode = await showOutput(ctx, client, await resolveJobId(client, id), {
        view,
        follow: options.follow === true,
        raw: options.raw === true,
        json: common.json === true,
        ...(reconnectForMs === undefined ? {} : { reconnectForMs }),
        ...(options.reconnectFor === undefined
          ? { reconnectSetting: '--reconnect-for or JOBWORKER_RECONNECT_FOR' }
          : {}),
      });
    },
  );
}
