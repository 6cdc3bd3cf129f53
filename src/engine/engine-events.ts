import type { Job } from '../core/job.ts';

/**
 * Lifecycle events of the engine, named `noun:verb`. Each carries the job as stored
 * right after the change.
 */
export interface EngineEvents {
  /** The job was admitted to its queue (it may have been cancelled at once: see its status). */
  'job:queued': [job: Job];
  /** The job's processes were spawned and its start recorded. */
  'job:started': [job: Job];
  /** A job found running at start-up was verified and adopted. */
  'job:adopted': [job: Job];
  /** A running job's processes were frozen and its pause recorded (`paused`). */
  'job:paused': [job: Job];
  /** A paused job's processes were thawed and its resume recorded (`running` again). */
  'job:resumed': [job: Job];
  /** A stop (or timeout) was recorded; the job is still running until its processes are gone. */
  'job:stopping': [job: Job];
  /**
   * A running job reported progress (a new last valid line in its `JOBWORKER_PROGRESS`): the job
   * carries it as `progress`.
   */
  'job:progress': [job: Job];
  /** The job reached a final status. */
  'job:finished': [job: Job];
  /** A retention pass ended, having deleted this many finished jobs (and their output). */
  'history:pruned': [deleted: number];
  /** A finished job was deleted on request, with its output. */
  'job:deleted': [job: Job];
  /**
   * A deletion through this node forgot these queues (the last job of each, which had no settings,
   * went): nothing is kept for them any more (docs/queues.md, "How many queues").
   */
  'queue:forgotten': [names: readonly string[]];
  /** The node was drained (`draining: true`: it starts nothing new) or undrained. */
  'node:drain': [draining: boolean];
  /** Something failed in the background (a job whose end could not be recorded, ...). */
  'engine:error': [error: Error, jobId: string | null];
}
