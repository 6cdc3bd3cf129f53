import type { Caller, Principal } from '../auth/principal.ts';
import { type AuditSink, NO_AUDIT } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { JobworkerError, ValidationError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';
import { queueName, SPEC_LIMITS } from '../core/spec.ts';
import { type TaskDefinition, taskRunSpec, validateTaskParams } from '../core/task-definition.ts';
import type { QueueSettings, QueueState } from '../store/job-store.ts';
import { auditedCall } from './audited-call.ts';
import type { JobService } from './job-service.ts';
import { AlreadyFinishedError } from './service-errors.ts';

/** A task definition as `listFor` gives it: `env` for admins only. */
export type ListedTask = Omit<TaskDefinition, 'env'> & { readonly env?: TaskDefinition['env'] };

import { requireAdmin } from './require-admin.ts';
import { loadTasksFile, type TasksFile } from './tasks-file.ts';

/** A task name nobody defined. */
export class UnknownTaskError extends JobworkerError {
  static override readonly errorName = 'UnknownTaskError';
  constructor(name: string, known: readonly string[]) {
    super(
      'NOT_FOUND',
      `No task named ${JSON.stringify(name)}; the server defines ${known.length > 0 ? known.join(', ') : 'none'}`,
    );
  }
}

export interface TaskServiceOptions {
  /** The tasks file (`serve --tasks FILE`); absent, no task is defined and reload is refused. */
  readonly file?: string;
  /** Applies a file's `queues:` settings. */
  readonly setQueue: (name: string, settings: Partial<QueueSettings>) => Promise<QueueState>;
  readonly audit?: AuditSink;
  readonly clock?: Clock;
}

/** What a reload did. */
export interface TasksLoaded {
  readonly file: string;
  readonly tasks: readonly TaskDefinition[];
}

/**
 * Named tasks (docs/tasks.md): the definitions of the server's tasks file, and their runs. A run
 * is a job submitted through the `JobService` as its caller (authorization, run-as account,
 * queues, audit all apply as to any job), recording the task and its parameters on the job.
 * Definitions are replaced whole on a reload, and only by a file that checks out entirely: a bad
 * one leaves the ones in force.
 */
export class TaskService {
  readonly #jobs: JobService;
  readonly #options: TaskServiceOptions;
  readonly #audit: { sink: AuditSink; clock: Clock };
  #tasks: ReadonlyMap<string, TaskDefinition> = new Map();

  private constructor(jobs: JobService, options: TaskServiceOptions) {
    this.#jobs = jobs;
    this.#options = options;
    this.#audit = { sink: options.audit ?? NO_AUDIT, clock: options.clock ?? systemClock };
  }

  /** Loads the tasks file, if any: a bad file is an error here (the server does not start). */
  static async open(jobs: JobService, options: TaskServiceOptions): Promise<TaskService> {
    const service = new TaskService(jobs, options);
    if (options.file !== undefined) await service.#load(options.file);
    return service;
  }

  /** The job service its runs go through (the task manager routes' status and cancel). */
  get jobs(): JobService {
    return this.#jobs;
  }

  /** The tasks file in force, if any. */
  get file(): string | undefined {
    return this.#options.file;
  }

  /** Every definition, by name; anyone authenticated may read them. */
  list(): TaskDefinition[] {
    return [...this.#tasks.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The definitions as `who` may read them: an admin's whole; without `env` for the others, as a
   * job's environment is never shown. Not a boundary: a run runs as its caller's account, whose
   * processes can read its environment (docs/tasks.md).
   */
  listFor(who: Principal): ListedTask[] {
    const all = this.list();
    if (who.role === 'admin') return all;
    return all.map(({ env: _env, ...rest }) => rest);
  }

  /** One definition; NOT_FOUND naming the known ones. */
  get(name: string): TaskDefinition {
    const task = this.#tasks.get(name);
    if (!task) throw new UnknownTaskError(name, [...this.#tasks.keys()].sort());
    return task;
  }

  /**
   * Reads the tasks file again (admins only): its definitions replace the ones in force, and its
   * queue settings are applied. A file that does not check out changes nothing and is refused with
   * a `VALIDATION_FAILED` naming the file and the field.
   */
  reload(who: Caller): Promise<TasksLoaded> {
    return auditedCall(this.#audit, who, 'tasks:reload', this.#options.file ?? null, async () => {
      requireAdmin(who, 'reload the task definitions');
      const file = this.#options.file;
      if (file === undefined) {
        throw new ValidationError(
          'tasks',
          'The server was started without a tasks file (`serve --tasks FILE`)',
        );
      }
      await this.#load(file);
      return { file, tasks: this.list() };
    });
  }

  /**
   * Starts a run of a task as the caller's job: parameters are checked against the definition
   * (`params.<name>` names a missing, unknown or wrong one; with `coerce`, text values such as a
   * URL's query are read as their type). The same rules as starting a job apply (viewers may not).
   */
  async run(who: Caller, name: string, params: unknown, options: { coerce?: boolean } = {}): Promise<Job> {
    let run: ReturnType<typeof taskRunSpec>;
    try {
      // The role first, as at any start: a viewer learns nothing of the task or its parameters.
      if (who.role === 'viewer') {
        throw new JobworkerError('FORBIDDEN', 'A viewer reads jobs and queues only: it may not run a task');
      }
      const task = this.get(name);
      run = taskRunSpec(task, validateTaskParams(task, params, options));
    } catch (err) {
      // Refused before it reaches the job's submission: recorded as a refused start all the same.
      return auditedCall<Job>(this.#audit, who, 'job:submit', null, () => {
        throw err;
      });
    }
    return (await this.#jobs.submit(who, run.spec, { task: run.task })).job;
  }

  /**
   * The result of a job (see `JobService.result`): the same rules as reading the job; of a retried
   * one, its latest attempt's.
   */
  result(who: Principal, id: string) {
    return this.#jobs.result(who, id);
  }

  /**
   * A run as the task manager's routes know it: the latest attempt of the job (`JobService.latest`),
   * so that a run whose first attempt failed and is retried reads as its retry does, not `failed`.
   */
  status(who: Principal, id: string): Promise<Job> {
    return this.#jobs.latest(who, id);
  }

  /**
   * Stops a run's live attempt (see `status`): its latest, queued or running. An attempt that ended
   * as the stop reached it and was retried has the stop go to its retry; one that ended and was not
   * retried answers `ALREADY_FINISHED`. A retry stored after a stop on record never comes: the end
   * of a run asked to stop is not retried (`JobStore.markRetried`).
   */
  async cancel(who: Caller, id: string): Promise<Job> {
    for (let tries = 0; ; tries++) {
      const live = await this.#jobs.latest(who, id);
      try {
        return await this.#jobs.stop(who, live.id);
      } catch (err) {
        const retried = err instanceof AlreadyFinishedError && err.job.retriedAs !== null;
        if (!retried || tries >= SPEC_LIMITS.attempts) throw err;
      }
    }
  }

  async #load(path: string): Promise<void> {
    const loaded: TasksFile = await loadTasksFile(path);
    for (const name of loaded.queues.keys()) queueName(`queues.${name}`, name);
    for (const [name, settings] of loaded.queues) await this.#options.setQueue(name, settings);
    this.#tasks = loaded.tasks;
  }
}
