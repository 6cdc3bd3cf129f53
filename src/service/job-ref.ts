import { JobworkerError, ValidationError } from '../core/errors.ts';
import { isJobId } from '../core/ids.ts';
import type { Job } from '../core/job.ts';
import type { JobListQuery, JobPage } from '../store/job-store.ts';
import { AmbiguousRefError } from './service-errors.ts';

/** The shortest id prefix taken as one: as git and docker, short enough to type, long enough to mean one. */
export const MIN_ID_PREFIX = 6;

/** Candidates named in an AMBIGUOUS error. */
const SHOWN = 5;

/** What resolving needs: reads already scoped to what the caller may see. */
export interface JobRefScope {
  /** The job by whole id (NOT_FOUND when the caller may not see it). */
  get(id: string): Promise<Job>;
  list(query: JobListQuery): Promise<JobPage>;
  /** The owner every list is limited to; undefined for an admin, who sees every job. */
  readonly visibleOwner: string | undefined;
  /** The caller: `last` and names are looked up among the caller's own jobs. */
  readonly self: string;
}

const PREFIX = /^[0-9a-f-]+$/;

/**
 * Resolves what a person typed for a job (docs/cli.md, "Naming a job"), in this order: a whole id;
 * `last`; an id prefix of at least 6 characters; a name. Each step is one index range: the prefix
 * a range of the primary key (or of the owner index), the name the owner+name index, `last` the
 * owner index. Every list is scoped to the caller, so another user's ids never show.
 */
export async function resolveJobRef(ref: string, scope: JobRefScope): Promise<Job> {
  if (typeof ref !== 'string' || ref.trim() === '') {
    throw ValidationError.expected('ref', 'a job id, an id prefix, a job name or `last`', ref);
  }
  const text = ref.trim();
  if (isJobId(text.toLowerCase())) return scope.get(text.toLowerCase());
  const owner = scope.visibleOwner === undefined ? {} : { owner: scope.visibleOwner };
  if (text === 'last') {
    const page = await scope.list({ owner: scope.self, limit: 1 });
    const job = page.jobs[0];
    if (!job) throw new JobworkerError('NOT_FOUND', 'No job of yours yet: `last` names your newest job');
    return job;
  }
  const prefix = text.toLowerCase();
  if (prefix.length >= MIN_ID_PREFIX && prefix.length <= 36 && PREFIX.test(prefix)) {
    const page = await scope.list({ idPrefix: prefix, limit: SHOWN + 1, ...owner });
    if (page.jobs.length === 1) return page.jobs[0]!;
    if (page.jobs.length > 1) {
      throw new AmbiguousRefError(text, 'Id prefix', page.jobs.slice(0, SHOWN), page.jobs.length > SHOWN);
    }
  }
  const named = await scope.list({ name: text, owner: scope.self, limit: SHOWN + 1 });
  if (named.jobs.length === 1) return named.jobs[0]!;
  if (named.jobs.length > 1) {
    throw new AmbiguousRefError(text, 'Name', named.jobs.slice(0, SHOWN), named.jobs.length > SHOWN);
  }
  throw new JobworkerError(
    'NOT_FOUND',
    `No job matches ${JSON.stringify(text)}: give its id, at least ${MIN_ID_PREFIX} characters of it, ` +
      'the name of one of your jobs, or `last`',
  );
}
