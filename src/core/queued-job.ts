import type { Job, JobSpec } from './job.ts';

/** What a new job needs beyond its defaults. */
export interface NewJob {
  readonly id: string;
  readonly spec: JobSpec;
  readonly owner: string;
  readonly node: string;
  readonly createdAt: Date;
  readonly runAt: Date | null;
  /** 1 for a first run (the default), k for the k-th attempt. */
  readonly attempt?: number;
  /** The previous attempt, on a retry. */
  readonly retryOf?: string | null;
}

/** A job as it is first stored: queued, nothing run, nothing written. The store decides its hold. */
export function queuedJob(fields: NewJob): Job {
  return {
    id: fields.id,
    spec: fields.spec,
    status: 'queued',
    owner: fields.owner,
    createdAt: fields.createdAt,
    startedAt: null,
    finishedAt: null,
    stop: null,
    stopForced: false,
    process: null,
    exit: null,
    node: fields.node,
    outputBytes: { stdout: 0, stderr: 0 },
    runAt: fields.runAt,
    hold: fields.runAt ? 'delay' : null,
    attempt: fields.attempt ?? 1,
    retryOf: fields.retryOf ?? null,
    retriedAs: null,
    pausedAt: null,
    usage: null,
    resultError: null,
    progress: null,
  };
}
