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
 * The newest attempt when every job of `jobs` (a page of the matches of a name) is an attempt of
 * one retry chain: each attempt carries its job's name, and the name then means the chain, whose
 * newest attempt is the one to follow or stop (docs/queues.md, "Retries"). Walked by `retryOf`,
 * not by id order, which another node's clock may not keep. A chain has at most `attempt` members
 * up to its newest: a page of `attempt + 1` holds all of it and shows any other match.
 */
async function newestOfOneChain(
  jobs: readonly Job[],
  list: (limit: number) => Promise<JobPage>,
): Promise<Job | undefined> {
  const latest = (page: readonly Job[]) => page.reduce((a, b) => (b.attempt > a.attempt ? b : a));
  if (latest(jobs).attempt < jobs.length) return undefined;
  // A full page may not be all of them.
  const all = jobs.length > SHOWN ? (await list(latest(jobs).attempt + 1)).jobs : jobs;
  if (all.length === 0) return undefined;
  const newest = latest(all);
  const byId = new Map(all.map((job) => [job.id, job]));
  let linked = 0;
  // Bounded by the page: a record linking back to itself would not loop.
  for (let job = byId.get(newest.id); job !== undefined && linked <= all.length; linked++) {
    job = job.retryOf === null ? undefined : byId.get(job.retryOf);
  }
  return linked === all.length ? newest : undefined;
}

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
    const newest = await newestOfOneChain(named.jobs, (limit) =>
      scope.list({ name: text, owner: scope.self, limit }),
    );
    if (newest !== undefined) return newest;
    throw new AmbiguousRefError(text, 'Name', named.jobs.slice(0, SHOWN), named.jobs.length > SHOWN);
  }
  throw new JobworkerError(
    'NOT_FOUND',
    `No job matches ${JSON.stringify(text)}: give its id, at least ${MIN_ID_PREFIX} characters of it, ` +
      'the name of one of your jobs, or `last`',
  );
}
