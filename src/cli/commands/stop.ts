import type { Command } from 'commander';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { formatDuration, parseDuration } from '../durations.ts';
import { JOB_REF_HELP, resolveJobId } from '../job-ref.ts';
import { writeTo } from '../output-writer.ts';
import { workerctlForm, workerctlLines } from '../workerctl-form.ts';

export function registerStop(program: Command, ctx: CliContext): void {
  const command = program
    .command('stop')
    .summary('stop a job and every process it started')
    .description(
      'Stop a job: SIGTERM to its processes, then, after the grace period, kill all that are left. ' +
        'A queued job is cancelled at once, and so are the jobs waiting for it. ' +
        'Stopping a job that had already finished changes nothing and exits 1.',
    )
    .argument('<job>', JOB_REF_HELP)
    .option(
      '--grace <duration>',
      "time between SIGTERM and the kill (500ms, 10s, 5m; default: the server's)",
      parseDuration,
    );
  addCommonOptions(command).action(async (id: string, options: { grace?: number }) => {
    const common = commonOptions(command);
    const client = await connect(ctx, common);
    const job = await client.stopJob(await resolveJobId(client, id), options.grace);
    if (common.json === true) return printJson(ctx, job);
    if (workerctlForm(ctx)) return writeTo(ctx.stdout, workerctlLines(job, 'stopped'));
    const grace = options.grace === undefined ? '' : ` (grace ${formatDuration(options.grace)})`;
    const text =
      job.status === 'cancelled'
        ? `cancelled ${job.id} before it started`
        : job.status === 'running' || job.status === 'paused' || job.status === 'queued'
          ? `stopping ${job.id}${grace}`
          : `${job.id} ${job.status}`;
    await writeTo(ctx.stdout, `${text}\n`);
  });
}
