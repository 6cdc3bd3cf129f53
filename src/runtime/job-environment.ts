import { homedir } from 'node:os';
import type { JobSpec } from '../core/job.ts';
import type { JobIoPaths } from './job-io.ts';

/** The PATH a job gets unless its spec sets one. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The whole environment of a job: a small baseline, then the spec's own variables, then
 * the job's id. Nothing is inherited from the server, so its secrets never reach a job. A job with
 * an account gets that account's HOME, USER and LOGNAME; one without (the embedding program's
 * own) the server's HOME. With `io`, the job gets the paths it may leave its result and its
 * progress at (`JOBWORKER_RESULT`, `JOBWORKER_PROGRESS`: docs/tasks.md), which no spec can override.
 */
export function jobEnvironment(spec: JobSpec, jobId: string, io?: JobIoPaths): Record<string, string> {
  const { account } = spec;
  return {
    PATH: DEFAULT_PATH,
    HOME: account ? account.home : homedir(),
    ...(account ? { USER: account.name, LOGNAME: account.name } : {}),
    LANG: 'C.UTF-8',
    ...spec.env,
    JOBWORKER_JOB_ID: jobId,
    ...(io ? { JOBWORKER_RESULT: io.result, JOBWORKER_PROGRESS: io.progress } : {}),
  };
}
