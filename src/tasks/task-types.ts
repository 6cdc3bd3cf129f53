/**
 * The in-process task library's vocabulary.
 *
 * - **task**: a unit of work the manager runs inside this process, with an id, a status and
 *   (once finished) a result or an error. Tasks share the job states.
 * - **blocking task**: synchronous or CPU-bound code. It runs on a worker thread of the pool, so
 *   it is named by a module (path or URL) and an export: functions cannot cross threads.
 * - **polling task**: an object with `run()` (starts the work) and `poll()` or `checkOutput()`
 *   (asks whether it is done). The manager polls it on one shared timer, backing off while the
 *   task reports no progress.
 * - **history**: finished tasks kept for `get`/`list`; the oldest finished is evicted first.
 */
import type { Clock } from '../core/clock.ts';

/** Same words as jobs: queued → running → succeeded | failed | cancelled. */
export type TaskStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const FINAL_TASK_STATUSES: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export type TaskKind = 'blocking' | 'polling';

/** What one poll answers. `progress`, when it changes, resets the task's poll interval. */
export type PollResult<T = unknown> =
  | { readonly done: false; readonly progress?: unknown }
  | { readonly done: true; readonly value: T; readonly progress?: unknown };

/**
 * Work that runs elsewhere (a remote job, a file being written) and is checked now and then.
 * Either method may return a promise. `poll` and `checkOutput` are the same thing under the two
 * names the designs use; give one. `cancel`, if present, is called when the task is cancelled
 * while running.
 */
export interface PollingTask<T = unknown> {
  /** A label shown in status (`list`); defaults to `polling`. */
  readonly name?: string;
  run(): unknown;
  poll?(): PollResult<T> | Promise<PollResult<T>>;
  checkOutput?(): PollResult<T> | Promise<PollResult<T>>;
  cancel?(): unknown;
}

/** A blocking task as data: `module` exports `export`, called with `args` on a worker thread. */
export interface BlockingSpec {
  /** An absolute path or a `file:` URL (a relative path would depend on the worker's cwd). */
  readonly module: string | URL;
  readonly export: string;
  /** Structured-cloneable arguments (no functions, no class instances beyond plain data). */
  readonly args?: readonly unknown[];
}

/** A task's status as `get`, `list` and the events report it: a snapshot, plain data. */
export interface TaskInfo {
  readonly id: string;
  readonly kind: TaskKind;
  /** The export name of a blocking task, the `name` of a polling task. */
  readonly name: string;
  readonly status: TaskStatus;
  /** Set once `succeeded`. */
  readonly value?: unknown;
  /** Set once `failed` (the thrown error's name and message) or `cancelled`. */
  readonly error?: { readonly name: string; readonly message: string };
  /** The latest `progress` a poll reported. */
  readonly progress?: unknown;
  readonly submittedAt: Date;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  /** Polls so far (polling tasks). */
  readonly polls: number;
  /** The current poll interval in ms (polling tasks while running). */
  readonly pollIntervalMs?: number;
}

/** Typed lifecycle events, `noun:verb`; each carries the task's snapshot. */
export interface TaskEvents {
  'task:submit': [TaskInfo];
  'task:start': [TaskInfo];
  'task:progress': [TaskInfo];
  'task:succeed': [TaskInfo];
  'task:fail': [TaskInfo];
  'task:cancel': [TaskInfo];
  'task:evict': [TaskInfo];
}

export interface TaskManagerOptions {
  /** Tasks running at once (blocking and polling together); more wait `queued`. Default 100. */
  readonly concurrency?: number;
  /** Worker threads for blocking tasks. Default 2 (this machine's cores). */
  readonly threads?: number;
  /** Finished tasks kept; the oldest finished is evicted first. Default 1,000. */
  readonly historySize?: number;
  /** First poll interval, and the interval after a poll that showed progress. Default 100 ms. */
  readonly pollInitialMs?: number;
  /** The interval stops doubling here. Default 5,000 ms. */
  readonly pollMaxMs?: number;
  /** Time and timers; tests inject a manual clock. */
  readonly clock?: Clock;
}

/** Counters for tests and benchmarks: what polling cost so far. */
export interface TaskManagerStats {
  /** Polls made (calls to `poll`/`checkOutput`). */
  readonly polls: number;
  /** Times the one poll timer fired. */
  readonly wakeUps: number;
  /** Polls waiting in the heap. */
  readonly scheduled: number;
}
