import { JobworkerError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';

/** A stop on a job that had already finished: nothing changed. Carries the job as it is. */
export class AlreadyFinishedError extends JobworkerError {
  readonly job: Job;
  constructor(job: Job) {
    super('ALREADY_FINISHED', `Job ${job.id} had already finished (${job.status}); nothing changed`);
    this.job = job;
  }
}

/** The server is at a limit (open follows, ...); retrying later may work. */
export class CapacityError extends JobworkerError {
  constructor(message: string) {
    super('CAPACITY_EXHAUSTED', message);
  }
}
