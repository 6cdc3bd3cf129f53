import type { Command } from 'commander';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { JOB_REF_HELP, resolveJobId } from '../job-ref.ts';
import { writeTo } from '../output-writer.ts';

/** `pause ID` and `resume ID`: freeze a running job's processes and thaw them. */
export function registerPause(program: Command, ctx: CliContext): void {
  const pause = program
    .command('pause')
    .summary('freeze every process of a running job')
    .description(
      'Freeze every process of a running job (cgroup freezer, else SIGSTOP to its process group). ' +
        'It keeps its queue slot and its CPU time stops; `resume` thaws it. Anything but a running ' +
        'job is refused (exit 1).',
    )
    .argument('<job>', JOB_REF_HELP);
  addCommonOptions(pause).action(async (id: string) => {
    const common = commonOptions(pause);
    const client = await connect(ctx, common);
    const job = await client.pauseJob(await resolveJobId(client, id));
    if (common.json === true) return printJson(ctx, job);
    await writeTo(ctx.stdout, `paused ${job.id}\n`);
  });

  const resume = program.command('resume').summary('thaw a paused job').argument('<job>', JOB_REF_HELP);
  addCommonOptions(resume).action(async (id: string) => {
    const common = commonOptions(resume);
    const client = await connect(ctx, common);
    const job = await client.resumeJob(await resolveJobId(client, id));
    if (common.json === true) return printJson(ctx, job);
    await writeTo(ctx.stdout, `resumed ${job.id}\n`);
  });
}
