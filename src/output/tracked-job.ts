import type { FSWatcher } from 'node:fs';
import type { Clock } from '../core/clock.ts';
import type { OutputBytes } from '../core/job.ts';
import type { HeldFiles } from './held-files.ts';
import { OutputListeners } from './output-listeners.ts';
import { type JobRetention, newJobRetention } from './retention-enforcer.ts';
import { SharedReads } from './shared-reads.ts';

/** The sweep looks at unfollowed jobs this often, each at most this often... */
export const SWEEP_MIN_MS = 1000;
/**
 * ...and backs off, doubling, to this while a job writes nothing. Short, because it bounds how far
 * past its output cap a quiet job that bursts can write before retention trims it.
 */
export const SWEEP_MAX_MS = 2000;

/** What the output monitor holds for one running job it tracks. */
export interface Tracked {
  readonly jobId: string;
  readonly dir: string;
  readonly listeners: OutputListeners;
  /** The kernel watch: open only while the job has followers. */
  watcher: FSWatcher | undefined;
  /** Its files, held open only while it has followers (`HeldFiles`). */
  held: HeldFiles | undefined;
  /** The observation in flight; `again` asks for one more when events came during it. */
  observing?: Promise<void>;
  again: boolean;
  /** The seal: resolves with the streams' sizes it observed (undefined if that observation failed). */
  finishing?: Promise<OutputBytes | undefined>;
  /** The seal rejected (its bytes not indexed): the next `finish` seals again. */
  sealFailed?: boolean;
  /**
   * The sizes of the last observation that completed: the index covers them and retention has
   * acted on them, so an observation that finds the same sizes has nothing to do.
   */
  observed: OutputBytes | undefined;
  readonly retention: JobRetention;
  readonly shared: SharedReads;
  /** When the sweep observes this job next, and the wait after that. */
  sweepDueAt: number;
  sweepEveryMs: number;
}

/** A job just tracked: no watch, no follower, swept next after `SWEEP_MIN_MS`. */
export function newTracked(
  jobId: string,
  dir: string,
  clock: Clock,
  onError: (err: unknown) => void,
): Tracked {
  return {
    jobId,
    dir,
    listeners: new OutputListeners(clock, onError),
    watcher: undefined,
    held: undefined,
    again: false,
    observed: undefined,
    retention: newJobRetention(),
    shared: new SharedReads(),
    sweepDueAt: clock.now().getTime() + SWEEP_MIN_MS,
    sweepEveryMs: SWEEP_MIN_MS,
  };
}
