import { homedir } from 'node:os';
import type { JobSpec } from '../core/job.ts';

/** The PATH a job gets unless its spec sets one. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The whole environment of a job: a small baseline, then the spec's own variables, then
 * the job's id. Nothing is inherited from the server, so its secrets never reach a job.
 */
export function jobEnvironment(spec: JobSpec, jobId: string): Record<string, string> {
  return {
    PATH: DEFAULT_PATH,
    HOME: homedir(),
    LANG: 'C.UTF-8',
    ...spec.env,
    JOBWORKER_JOB_ID: jobId,
  };
}
