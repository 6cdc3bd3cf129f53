/**
 * `jobworker/tasks`: the in-process task manager (blocking tasks on worker threads, polling tasks
 * on one shared timer) and its HTTP routes. See docs/tasks.md.
 */
export type { Clock, ClockTimer } from '../core/clock.ts';
export { systemClock } from '../core/clock.ts';
export { JobworkerError, ValidationError } from '../core/errors.ts';
export { TaskManager } from './task-manager.ts';
export { type TaskFactory, type TaskRoutesOptions, taskRoutes } from './task-routes.ts';
export type {
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
