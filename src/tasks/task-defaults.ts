import { type Clock, systemClock } from '../core/clock.ts';
import { ValidationError } from '../core/errors.ts';
import type { TaskManagerOptions } from './task-types.ts';

export type ResolvedTaskOptions = Required<TaskManagerOptions> & { readonly clock: Clock };

/** Every default in one place, and every option checked: a bad one names itself. */
export function resolveTaskOptions(options: TaskManagerOptions = {}): ResolvedTaskOptions {
  const resolved = {
    concurrency: options.concurrency ?? 100,
    threads: options.threads ?? 2,
    historySize: options.historySize ?? 1000,
    pollInitialMs: options.pollInitialMs ?? 100,
    pollMaxMs: options.pollMaxMs ?? 5000,
    clock: options.clock ?? systemClock,
  } satisfies ResolvedTaskOptions;
  positiveInteger('concurrency', resolved.concurrency, true);
  positiveInteger('threads', resolved.threads, false);
  if (!Number.isInteger(resolved.historySize) || resolved.historySize < 0) {
    throw ValidationError.expected('historySize', 'a non-negative integer', resolved.historySize);
  }
  positiveInteger('pollInitialMs', resolved.pollInitialMs, false);
  if (!Number.isInteger(resolved.pollMaxMs) || resolved.pollMaxMs < resolved.pollInitialMs) {
    throw ValidationError.expected(
      'pollMaxMs',
      `an integer >= pollInitialMs (${resolved.pollInitialMs})`,
      resolved.pollMaxMs,
    );
  }
  return resolved;
}

function positiveInteger(field: string, value: number, infinityOk: boolean): void {
  if (infinityOk && value === Number.POSITIVE_INFINITY) return;
  if (!Number.isInteger(value) || value < 1)
    throw ValidationError.expected(field, 'a positive integer', value);
}
