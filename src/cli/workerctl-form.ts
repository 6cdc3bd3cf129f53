import type { ApiJob } from '../client/api-types.ts';
import { WORKERCTL_STATUS } from '../core/design-statuses.ts';
import type { CliContext } from './cli-context.ts';

/**
 * True when the CLI runs as `workerctl`: `start`, `stop` and `status` then print the workerctl
 * design's form (docs/compat.md) instead of jobworker's (a bare id for scripts, a description).
 */
export function workerctlForm(ctx: CliContext): boolean {
  return ctx.env.invokedAs === 'workerctl';
}

/** `jobID: ...` and `status: ...` lines, the status in the workerctl design's words (or the one given). */
export function workerctlLines(job: ApiJob, status: string = WORKERCTL_STATUS[job.status]): string {
  return `jobID: ${job.id}\nstatus: ${status}\n`;
}
