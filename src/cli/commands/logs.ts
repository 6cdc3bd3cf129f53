import { type Command, Option } from 'commander';
import { addCommonOptions, type CliContext, commonOptions, connect } from '../cli-context.ts';
import { parsePositiveDuration } from '../durations.ts';
import { JOB_REF_HELP, resolveJobId } from '../job-ref.ts';
import { reconnectForFromEnv, showOutput } from '../show-output.ts';

interface LogsOptions {
  follow?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  raw?: boolean;
  reconnectFor?: number;
}

export function registerLogs(program: Command, ctx: CliContext): void {
  const command = program
    .command('logs')
    .summary("print a job's output")
    .description(
      "Print a job's output from its first byte. By default both streams, in the order the server " +
        "observed them: the job's stdout to stdout and its stderr to stderr. With --stdout or --stderr, " +
        'that one stream, to stdout. To a terminal, escape sequences that could act on it (title, ' +
        'clipboard, cursor moves) are removed unless --raw; to a pipe or file, the bytes are exact.',
    )
    .argument('<job>', JOB_REF_HELP)
    .option('-f, --follow', 'keep printing until the job ends, then exit with its exit code')
    .addOption(new Option('--stdout', "only the job's stdout").conflicts('stderr'))
    .addOption(new Option('--stderr', "only the job's stderr (printed to stdout)"))
    .option('--raw', 'keep escape sequences when printing to a terminal')
    .option(
      '--reconnect-for <duration>',
      'with -f: how long to keep reconnecting while the server is unreachable (default: $JOBWORKER_RECONNECT_FOR, else 60s)',
      parsePositiveDuration,
    );
  addCommonOptions(command).action(async (id: string, options: LogsOptions) => {
    const common = commonOptions(command);
    const client = await connect(ctx, common);
    ctx.exitCode = await showOutput(ctx, client, await resolveJobId(client, id), {
      view: options.stdout === true ? 'stdout' : options.stderr === true ? 'stderr' : 'all',
      follow: options.follow === true,
      raw: options.raw === true,
      json: common.json === true,
      reconnectForMs: options.reconnectFor ?? reconnectForFromEnv(ctx.env),
    });
  });
}
