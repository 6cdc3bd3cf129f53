import { EventEmitter } from 'node:events';
import { type ClockTimer, steadyMs } from '../core/clock.ts';
import { describe, JobworkerError, ValidationError } from '../core/errors.ts';
import { newJobId } from '../core/ids.ts';
import { BlockingPool, toBlockingCall } from './blocking-pool.ts';
import type { BlockingCall } from './blocking-worker.ts';
import { type PollEntry, PollScheduler } from './poll-scheduler.ts';
import { PollerThread } from './poller-thread.ts';
import { type ResolvedTaskOptions, resolveTaskOptions } from './task-defaults.ts';
import { TaskQueue } from './task-queue.ts';
import type {
  BlockingSpec,
  PollingTask,
  PollResult,
  TaskEvents,
  TaskInfo,
  TaskKind,
  TaskManagerOptions,
  TaskManagerStats,
  TaskStatus,
} from './task-types.ts';

interface TaskRecord {
  readonly id: string;
  readonly kind: TaskKind;
  readonly name: string;
  status: TaskStatus;
  value?: unknown;
  error?: { name: string; message: string };
  progress?: unknown;
  progressKey?: string;
  readonly submittedAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  polls: number;
  intervalMs?: number;
  readonly call?: BlockingCall;
  readonly task?: PollingTask;
  abort?: AbortController;
  entry?: PollEntry;
  readonly done: PromiseWithResolvers<TaskInfo>;
}

/** How long `close()` waits for running tasks' own `cancel()` before it ends the threads. */
const CLOSE_CANCEL_WAIT_MS = 5000;

/**
 * Runs functions, not processes, inside this program, with the job states: blocking tasks on a
 * pool of worker threads, polling tasks checked on one shared timer with backoff. See
 * docs/tasks.md.
 */
export class TaskManager extends EventEmitter<TaskEvents> {
  readonly #options: ResolvedTaskOptions;
  readonly #tasks = new Map<string, TaskRecord>();
  /** Finished task ids, oldest first (a Set keeps insertion order): evicted from the front. */
  readonly #history = new Set<string>();
  readonly #queue = new TaskQueue<TaskRecord>((r) => r.status !== 'queued');
  readonly #scheduler: PollScheduler;
  readonly #pool: BlockingPool;
  readonly #pollerThread = new PollerThread();
  #running = 0;
  #threadsBusy = 0;
  #polls = 0;
  #closed = false;
  /** Running tasks' own `cancel()` calls not yet settled (`close` waits for them). */
  readonly #cancelling = new Set<Promise<void>>();
  /** Tasks not yet finished; while there are any, #keepAlive holds the process open. */
  #active = 0;
  #keepAlive: NodeJS.Timeout | undefined;

  constructor(options: TaskManagerOptions = {}) {
    super();
    this.#options = resolveTaskOptions(options);
    this.#scheduler = new PollScheduler(this.#options.clock);
    this.#pool = new BlockingPool(this.#options.threads);
  }

  /**
   * Runs `module`'s export `exportName` with `args` on a worker thread. `module` is an absolute
   * path or a `file:` URL (`new URL('./work.ts', import.meta.url)`); `args` must be
   * structured-cloneable. Returns the task id.
   */
  submitBlocking(module: string | URL, exportName: string, ...args: unknown[]): string {
    return this.submitBlockingSpec({ module, export: exportName, args });
  }

  /** `submitBlocking` with the call as data (what the HTTP routes' task factories return). */
  submitBlockingSpec(spec: BlockingSpec): string {
    const call = toBlockingCall(spec);
    return this.#submit({ kind: 'blocking', name: call.export, call });
  }

  /** Starts `task.run()` when a slot is free, then polls it until it reports `done`. */
  submitPolling(task: PollingTask): string {
    if (typeof task !== 'object' || task === null || typeof task.run !== 'function') {
      throw ValidationError.expected('task', 'an object with a run() method', task);
    }
    if (typeof task.poll !== 'function' && typeof task.checkOutput !== 'function') {
      throw ValidationError.expected('task.poll', 'a poll() or checkOutput() method', task.poll);
    }
    const name = typeof task.name === 'string' && task.name !== '' ? task.name : 'polling';
    return this.#submit({ kind: 'polling', name, task });
  }

  /**
   * A polling task whose `run` and `poll` may block: `module`'s export `factoryName`, called
   * with `args` on the poller thread, makes the task object, which stays there; the manager
   * schedules its polls as for any polling task. Returns the task id.
   */
  submitPollingModule(module: string | URL, factoryName: string, ...args: unknown[]): string {
    const call = toBlockingCall({ module, export: factoryName, args });
    const id = newJobId(this.#options.clock.now().getTime());
    return this.#submit({ kind: 'polling', name: call.export, task: this.#pollerThread.task(id, call) }, id);
  }

  /** The task's status, or undefined for an unknown (or evicted) id. */
  get(id: string): TaskInfo | undefined {
    const record = this.#tasks.get(id);
    return record && snapshot(record);
  }

  /** Every task the manager knows, in submission order; optionally only those in `status`. */
  list(filter: { status?: TaskStatus } = {}): TaskInfo[] {
    const out: TaskInfo[] = [];
    for (const record of this.#tasks.values()) {
      if (filter.status === undefined || record.status === filter.status) out.push(snapshot(record));
    }
    return out;
  }

  /** Resolves with the task's final status (whatever it is: failed is not a rejection). */
  wait(id: string): Promise<TaskInfo> {
    const record = this.#tasks.get(id);
    if (!record) return Promise.reject(notFound(id));
    return record.done.promise;
  }

  /**
   * Cancels a queued or running task and answers its new status. A running blocking task's
   * thread is terminated; a running polling task is polled no more and its `cancel()` called.
   */
  cancel(id: string): TaskInfo {
    const record = this.#tasks.get(id);
    if (!record) throw notFound(id);
    if (isFinal(record.status)) {
      throw new JobworkerError('ALREADY_FINISHED', `Task ${id} is ${record.status}: nothing to cancel`);
    }
    const wasRunning = record.status === 'running';
    record.abort?.abort();
    if (record.entry) record.entry.cancelled = true;
    if (wasRunning) this.#callCancel(record);
    try {
      this.#finish(record, 'cancelled', {
        error: { name: 'CancelledError', message: `Task ${id} was cancelled` },
      });
    } finally {
      // Gone from the queue once it is swept (the record is final now, which the sweep looks
      // at), even when a listener of the cancel threw.
      if (!wasRunning) this.#queue.forget();
    }
    return snapshot(record);
  }

  /** Calls a running task's own `cancel()`, if it has one; `close()` waits for it a while. */
  #callCancel(record: TaskRecord): void {
    if (!record.task?.cancel) return;
    try {
      // A task's own cancel failing changes nothing here.
      const cancelling = Promise.resolve(record.task.cancel()).then(
        () => undefined,
        () => undefined,
      );
      this.#cancelling.add(cancelling);
      void cancelling.finally(() => this.#cancelling.delete(cancelling));
    } catch {
      // as above, thrown at once
    }
  }

  /**
   * Fails a polling task for what its `poll()` returned, and calls its `cancel()`: nothing will
   * poll it again, and it may still hold what it started (a remote job, a connection, its object
   * on the poller thread).
   */
  #reject(record: TaskRecord, message: string): void {
    this.#callCancel(record);
    this.#finish(record, 'failed', { error: { name: 'ValidationError', message } });
  }

  /** What polling cost so far. */
  stats(): TaskManagerStats {
    return { polls: this.#polls, wakeUps: this.#scheduler.wakeUps, scheduled: this.#scheduler.size };
  }

  /**
   * Cancels every queued and running task, stops the poll timer and the threads. A running task's
   * `cancel()` is awaited, up to CLOSE_CANCEL_WAIT_MS, before the threads go: the poller thread's
   * tasks live there, and ending it first would skip theirs.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A listener that throws on one task's cancel must not leave the others running, nor the
    // threads up: its error is thrown once the manager is closed.
    let failure: { error: unknown } | undefined;
    for (const record of [...this.#tasks.values()]) {
      try {
        if (!isFinal(record.status)) this.cancel(record.id);
      } catch (error) {
        failure ??= { error };
      }
    }
    this.#scheduler.close();
    if (this.#cancelling.size > 0) {
      let timer: ClockTimer | undefined;
      await Promise.race([
        Promise.all(this.#cancelling),
        new Promise<void>((resolve) => {
          timer = this.#options.clock.setTimer(resolve, CLOSE_CANCEL_WAIT_MS);
        }),
      ]);
      timer?.clear();
    }
    await Promise.all([this.#pool.close(), this.#pollerThread.close()]);
    if (failure) throw failure.error;
  }

  #submit(init: Pick<TaskRecord, 'kind' | 'name' | 'call' | 'task'>, id?: string): string {
    if (this.#closed) throw new JobworkerError('ILLEGAL_TRANSITION', 'The task manager is closed');
    const now = this.#options.clock.now();
    const record: TaskRecord = {
      ...init,
      id: id ?? newJobId(now.getTime()),
      status: 'queued',
      submittedAt: now,
      polls: 0,
      done: Promise.withResolvers<TaskInfo>(),
    };
    this.#tasks.set(record.id, record);
    this.#queue.push(record);
    // Clock timers do not keep the process alive (a server has its sockets for that); a program
    // awaiting `wait()` on a polling task would exit with the task unfinished. This handle is
    // not a schedule, only a reference, so it bypasses the Clock on purpose.
    if (this.#active++ === 0) this.#keepAlive = setInterval(() => undefined, 2 ** 30);
    // A listener that throws would otherwise leave the task queued and nothing started. Its error
    // is not this submit's: the task is in, and a caller that retried on it would submit it twice.
    try {
      this.#emitThen([['task:submit', snapshot(record)]], () => this.#pump());
    } catch (error) {
      throwUncaught(error);
    }
    return record.id;
  }

  /** Starts queued tasks while slots (and, for blocking ones, threads) are free. */
  #pump(): void {
    // A listener that throws on one start must not keep the tasks after it from starting.
    let failure: { error: unknown } | undefined;
    while (this.#running < this.#options.concurrency) {
      const threadFree = this.#threadsBusy < this.#options.threads;
      const next = this.#queue.take((r) => r.kind === 'polling' || threadFree);
      if (!next) break;
      try {
        this.#start(next);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }

  #start(record: TaskRecord): void {
    record.status = 'running';
    record.startedAt = this.#options.clock.now();
    this.#running++;
    // The work starts whatever a listener does: one that throws would leave the task running for
    // good with nothing started, its slot taken and its `wait()` hanging.
    this.#emitThen([['task:start', snapshot(record)]], () => {
      if (record.kind === 'blocking') this.#startBlocking(record);
      else this.#startPolling(record);
    });
  }

  #startBlocking(record: TaskRecord): void {
    const abort = new AbortController();
    record.abort = abort;
    this.#threadsBusy++;
    this.#pool
      .run(record.call as BlockingCall, abort.signal)
      .then(
        (value) => this.#finish(record, 'succeeded', { value }),
        (error: unknown) => this.#finish(record, 'failed', { error: errorOf(error) }),
      )
      .finally(() => {
        // The thread is free only now, even when the task was cancelled earlier.
        this.#threadsBusy--;
        this.#pump();
      });
  }

  #startPolling(record: TaskRecord): void {
    const task = record.task as PollingTask;
    let started: unknown;
    try {
      started = task.run();
    } catch (error) {
      this.#finish(record, 'failed', { error: errorOf(error) });
      return;
    }
    const schedule = () => {
      if (record.status !== 'running') return;
      record.intervalMs = this.#options.pollInitialMs;
      this.#schedulePoll(record);
    };
    if (isPromiseLike(started)) {
      started.then(schedule, (error: unknown) => this.#finish(record, 'failed', { error: errorOf(error) }));
    } else schedule();
  }

  #schedulePoll(record: TaskRecord): void {
    const entry: PollEntry = {
      dueAt: steadyMs(this.#options.clock) + (record.intervalMs ?? this.#options.pollInitialMs),
      cancelled: false,
      fire: () => this.#poll(record),
    };
    record.entry = entry;
    this.#scheduler.schedule(entry);
  }

  #poll(record: TaskRecord): void {
    if (record.status !== 'running') return;
    const task = record.task as PollingTask;
    record.polls++;
    this.#polls++;
    let result: unknown;
    try {
      result = task.poll ? task.poll() : task.checkOutput?.();
    } catch (error) {
      this.#finish(record, 'failed', { error: errorOf(error) });
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        (r) => this.#polled(record, r),
        (error: unknown) => this.#finish(record, 'failed', { error: errorOf(error) }),
      );
    } else this.#polled(record, result);
  }

  #polled(record: TaskRecord, result: unknown): void {
    if (record.status !== 'running') return;
    if (typeof result !== 'object' || result === null || typeof (result as PollResult).done !== 'boolean') {
      this.#reject(record, `Expected \`poll()\` to return {done: boolean}, got ${describe(result)}`);
      return;
    }
    const r = result as PollResult;
    const { pollInitialMs, pollMaxMs } = this.#options;
    let key: string | undefined;
    try {
      key = r.progress === undefined ? undefined : JSON.stringify(r.progress);
    } catch (error) {
      // A cycle or a BigInt: the task reported what cannot be shown, as a bad poll result does.
      this.#reject(record, `Expected \`progress\` to be JSON: ${errorOf(error).message}`);
      return;
    }
    const progressed = key !== undefined && key !== record.progressKey;
    if (progressed) {
      record.progress = r.progress;
      record.progressKey = key;
    }
    // The task's next step is taken whatever a listener of its progress does (one that throws
    // would otherwise leave it running for good, its slot taken and its `wait()` hanging).
    try {
      if (progressed) this.emit('task:progress', snapshot(record));
    } finally {
      if (r.done) this.#finish(record, 'succeeded', { value: r.value });
      else {
        // No news: check less often, up to the cap. News: back to the quick interval.
        const interval = record.intervalMs ?? pollInitialMs;
        record.intervalMs = progressed ? pollInitialMs : Math.min(interval * 2, pollMaxMs);
        this.#schedulePoll(record);
      }
    }
  }

  #finish(
    record: TaskRecord,
    status: 'succeeded' | 'failed' | 'cancelled',
    outcome: { value?: unknown; error?: { name: string; message: string } },
  ): void {
    if (isFinal(record.status)) return;
    // Checked as progress is: a value that cannot be shown (a BigInt, a cycle) would break every
    // listing of the tasks (`taskRoutes`) for as long as the task is kept.
    const refused = status === 'succeeded' ? notJson(outcome.value) : undefined;
    if (refused !== undefined) {
      const error = { name: 'ValidationError', message: `Expected \`value\` to be JSON: ${refused}` };
      this.#finish(record, 'failed', { error });
      return;
    }
    const wasRunning = record.status === 'running';
    record.status = status;
    record.finishedAt = this.#options.clock.now();
    if (status === 'succeeded') record.value = outcome.value;
    else if (outcome.error) record.error = outcome.error;
    record.intervalMs = undefined;
    record.entry = undefined;
    if (wasRunning) this.#running--;
    if (--this.#active === 0) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
    const info = snapshot(record);
    const evicted = this.#remember(record);
    record.done.resolve(info);
    const event = status === 'succeeded' ? 'task:succeed' : status === 'failed' ? 'task:fail' : 'task:cancel';
    // A listener that throws, of an eviction or of this end, would otherwise keep the task's own
    // event from being sent and leave the next queued task queued.
    this.#emitThen([...evicted.map((e) => ['task:evict', e] as const), [event, info]], () => {
      if (!this.#closed) this.#pump();
    });
  }

  /** Adds a finished task to the history and drops the oldest beyond its size: what they were. */
  #remember(record: TaskRecord): TaskInfo[] {
    const evicted: TaskInfo[] = [];
    this.#history.add(record.id);
    while (this.#history.size > this.#options.historySize) {
      const oldest = this.#history.values().next().value as string;
      this.#history.delete(oldest);
      const gone = this.#tasks.get(oldest);
      this.#tasks.delete(oldest);
      if (gone) evicted.push(snapshot(gone));
    }
    return evicted;
  }

  /**
   * Emits `events` in order, then runs `then`, whatever a listener does: one that throws (the
   * embedding program's error) must keep neither the later events nor the manager's bookkeeping
   * from being done. The first error is thrown once all of it is, as the program's own.
   */
  #emitThen(events: readonly (readonly [keyof TaskEvents, TaskInfo])[], then?: () => void): void {
    let failure: { error: unknown } | undefined;
    for (const [event, info] of events) {
      try {
        this.emit(event, info);
      } catch (error) {
        failure ??= { error };
      }
    }
    try {
      then?.();
    } catch (error) {
      failure ??= { error };
    }
    if (failure) throw failure.error;
  }
}

function snapshot(r: TaskRecord): TaskInfo {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    status: r.status,
    ...(r.status === 'succeeded' ? { value: r.value } : {}),
    ...(r.error ? { error: { ...r.error } } : {}),
    ...(r.progress !== undefined ? { progress: r.progress } : {}),
    submittedAt: r.submittedAt,
    ...(r.startedAt ? { startedAt: r.startedAt } : {}),
    ...(r.finishedAt ? { finishedAt: r.finishedAt } : {}),
    polls: r.polls,
    ...(r.intervalMs !== undefined ? { pollIntervalMs: r.intervalMs } : {}),
  };
}

function isFinal(status: TaskStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

/** Why `value` cannot be written as JSON (`JSON.stringify` throws: a BigInt, a cycle), or undefined. */
function notJson(value: unknown): string | undefined {
  try {
    JSON.stringify(value);
    return undefined;
  } catch (error) {
    return errorOf(error).message;
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}

function errorOf(error: unknown): { name: string; message: string } {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}

/**
 * Throws `error` where no caller catches it, as a listener's error of an event that a timer or a
 * thread's answer brought: the embedding program's own (`uncaughtException`), told without failing
 * the call that emitted it.
 */
function throwUncaught(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

function notFound(id: string): JobworkerError {
  return new JobworkerError('NOT_FOUND', `No task with id ${id}`);
}
