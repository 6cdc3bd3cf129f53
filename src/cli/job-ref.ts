import type { ApiClient } from '../client/api-client.ts';
import type { ApiJob } from '../client/api-types.ts';
import { isJobId } from '../core/ids.ts';

/**
 * What every command that takes a job accepts (docs/cli.md, "Naming a job"): a whole id, a unique
 * prefix of at least 6 characters, the name of exactly one of your jobs, or `last`. The server
 * resolves it among what the caller may see; a whole id costs no extra request.
 */
export const JOB_REF_HELP = 'the job: its id, 6+ characters of it, its name, or last';

/** The job's id for `ref`. */
export async function resolveJobId(client: ApiClient, ref: string): Promise<string> {
  const id = ref.trim().toLowerCase();
  return isJobId(id) ? id : (await client.resolveJob(ref)).id;
}

/** The job for `ref`, as the server has it now. */
export function resolveJob(client: ApiClient, ref: string): Promise<ApiJob> {
  const id = ref.trim().toLowerCase();
  return isJobId(id) ? client.getJob(id) : client.resolveJob(ref);
}
