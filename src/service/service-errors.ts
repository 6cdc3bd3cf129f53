import { JobworkerError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';

/** A stop on a job that had already finished: nothing changed. Carries the job as it is. */
export class AlreadyFinishedError extends JobworkerError {
  static override readonly errorName = 'AlreadyFinishedError';
  readonly job: Job;
  constructor(job: Job) {
    super('ALREADY_FINISHED', `Job ${job.id} had already finished (${job.status}); nothing changed`);
    this.job = job;
  }
}

/** The server is at a limit (open follows, ...); retrying later may work. */
export class CapacityError extends JobworkerError {
  static override readonly errorName = 'CapacityError';
  constructor(message: string) {
    super('CAPACITY_EXHAUSTED', message);
  }
}

/** A job reference (id prefix or name) that matches more than one job the caller may see. */
export class AmbiguousRefError extends JobworkerError {
  static override readonly errorName = 'AmbiguousRefError';
  readonly ref: string;
  /** Some of the jobs it matches, newest first. */
  readonly candidates: readonly Job[];
  constructor(ref: string, what: string, candidates: readonly Job[], more: boolean) {
    const list = candidates.map((job) => (job.spec.name === null ? job.id : `${job.id} (${job.spec.name})`));
    super(
      'AMBIGUOUS',
      `${what} ${JSON.stringify(ref)} matches ${more ? 'more than ' : ''}${candidates.length} jobs: ` +
        `${list.join(', ')}${more ? ', ...' : ''}; give more of the id`,
    );
    this.ref = ref;
    this.candidates = candidates;
  }
}

/**
 * A result asked of a job that did not succeed, or whose result could not be kept: there is none.
 * Carries the job (its status, exit) and the last lines of its stderr.
 */
export class JobFailedError extends JobworkerError {
  static override readonly errorName = 'JobFailedError';
  readonly job: Job;
  readonly stderrTail: string;
  constructor(job: Job, message: string, stderrTail: string) {
    super('JOB_FAILED', message);
    this.job = job;
    this.stderrTail = stderrTail;
  }
}
