import type { Command } from 'commander';
import {
  addCommonOptions,
  type CliContext,
  commonOptions,
  connect,
  printJson,
  stdoutStyle,
} from '../cli-context.ts';
import { describeJob } from '../job-format.ts';
import { JOB_REF_HELP, resolveJob } from '../job-ref.ts';
import { writeTo } from '../output-writer.ts';
import { showOutput } from '../show-output.ts';
import { workerctlForm, workerctlLines } from '../workerctl-form.ts';

export function registerStatus(program: Command, ctx: CliContext): void {
  const command = program
    .command('status')
    .summary("show a job's status and result")
    .argument('<job>', JOB_REF_HELP);
  addCommonOptions(command).action(async (id: string) => {
    const common = commonOptions(command);
    const client = await connect(ctx, common);
    const job = await resolveJob(client, id);
    if (common.json === true) return printJson(ctx, job);
    if (workerctlForm(ctx)) {
      // The workerctl design's form: the status, then the output so far, both streams to stdout.
      await writeTo(ctx.stdout, `${workerctlLines(job)}output:\n`);
      await showOutput(ctx, client, job.id, {
        view: 'all',
        follow: false,
        raw: false,
        json: false,
        allToStdout: true,
      });
      return;
    }
    await writeTo(ctx.stdout, describeJob(job, stdoutStyle(ctx), new Date()));
  });
}
