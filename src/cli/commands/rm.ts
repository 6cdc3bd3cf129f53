import type { Command } from 'commander';
import type { ApiJob } from '../../client/api-types.ts';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { ApiError, EXIT } from '../errors.ts';
import { resolveJobId } from '../job-ref.ts';
import { writeTo } from '../output-writer.ts';
import { printable } from '../terminal-sanitizer.ts';

/** `rm JOB...`: delete finished jobs and their output. */
export function registerRm(program: Command, ctx: CliContext): void {
  const command = program
    .command('rm')
    .summary('delete finished jobs and their output')
    .description(
      'Delete finished jobs, each with its output, for good. A job that is queued, running or paused ' +
        'is refused (stop it first), and so is one a queued job waits for (--after). Each job is ' +
        'named by its id, 6+ characters of it, its name, or last. The others are deleted even when ' +
        'one fails; the exit status is then 1.',
    )
    .argument('<job...>', 'the jobs: ids, 6+ characters of one, names, or last');
  addCommonOptions(command).action(async (refs: string[]) => {
    const common = commonOptions(command);
    const client = await connect(ctx, common);
    const deleted: ApiJob[] = [];
    const failed: { job: string; error: { code: string; message: string } }[] = [];
    for (const [i, ref] of refs.entries()) {
      try {
        const job = await client.deleteJob(await resolveJobId(client, ref));
        deleted.push(job);
        if (common.json !== true) await writeTo(ctx.stdout, `deleted ${job.id}\n`);
      } catch (error) {
        if (!(error instanceof ApiError)) {
          // The server went away: the document still tells what was deleted, and names this job
          // and the ones not tried as failed, rather than no document at all.
          if (common.json !== true) throw error;
          const message = error instanceof Error ? error.message : String(error);
          for (const rest of refs.slice(i))
            failed.push({ job: rest, error: { code: 'UNREACHABLE', message } });
          break;
        }
        failed.push({ job: ref, error: { code: error.code ?? 'ERROR', message: error.message } });
        if (common.json !== true)
          ctx.stderr.write(`jobworker: ${printable(ref)}: ${printable(error.describe())}\n`);
      }
    }
    if (common.json === true) await printJson(ctx, { deleted, failed });
    if (failed.length > 0) ctx.exitCode = EXIT.failure;
  });
}
