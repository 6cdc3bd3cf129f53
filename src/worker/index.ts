/**
 * `jobworker/worker`: jobworker's runtime embedded in a Node program, without a server. See
 * docs/library.md.
 */
export { JobworkerError, ValidationError } from '../core/errors.ts';
export type { Job, JobStatus } from '../core/job.ts';
export type { JobSpecInput } from '../core/spec.ts';
export {
  type OutputChunk,
  type OutputOptions,
  openWorker,
  Worker,
  type WorkerOptions,
} from './embedded-worker.ts';
