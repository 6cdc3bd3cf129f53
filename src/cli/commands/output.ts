import type { Command } from 'commander';
import { addCommonOptions, type CliContext, commonOptions, connect } from '../cli-context.ts';
import { JOB_REF_HELP, resolveJobId } from '../job-ref.ts';
import { showOutput } from '../show-output.ts';

/** The Job Worker design's `output <jobId>`: the job's output as it is now (like `logs <jobId>`). */
export function registerOutput(program: Command, ctx: CliContext): void {
  const command = program
    .command('output')
    .summary("print a job's output as it is now (the Job Worker design's name for `logs`)")
    .description(
      "Print a job's output from its first byte to where it is now: stdout to stdout, stderr to " +
        'stderr, in the order the server observed them. `logs` does the same and can follow.',
    )
    .argument('<job>', JOB_REF_HELP)
    .option('--raw', 'keep escape sequences when printing to a terminal');
  addCommonOptions(command).action(async (id: string, options: { raw?: boolean }) => {
    const common = commonOptions(command);
    const client = await connect(ctx, common);
    ctx.exitCode = await showOutput(ctx, client, await resolveJobId(client, id), {
      view: 'all',
      follow: false,
      raw: options.raw === true,
      json: common.json === true,
    });
  });
}
