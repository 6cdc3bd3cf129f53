import { constants } from 'node:os';
import type { ApiJob } from '../client/api-types.ts';

/**
 * The exit status of `start -f` and `logs -f`, like `docker run`: 0 when the job succeeded, its
 * exit code when it had one, 128 + the signal number when a signal killed it, else 1. A job that
 * did not succeed never yields 0.
 */
export function jobExitStatus(job: ApiJob): number {
  if (job.status === 'succeeded') return 0;
  if (job.signal !== null) {
    const number = (constants.signals as Record<string, number | undefined>)[job.signal];
    if (number !== undefined) return 128 + number;
  }
  if (job.exitCode !== null && job.exitCode > 0 && job.exitCode < 256) return job.exitCode;
  return 1;
}
