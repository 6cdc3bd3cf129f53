/**
 * Runs on a pool thread: imports the task's module and calls its export. Blocking tasks are named
 * by module and export because a function cannot be sent to another thread.
 */
import { describe } from '../core/errors.ts';

export interface BlockingCall {
  readonly module: string;
  readonly export: string;
  readonly args: readonly unknown[];
}

export default async function runBlocking(call: BlockingCall): Promise<unknown> {
  const loaded = (await import(call.module)) as Record<string, unknown>;
  const fn = loaded[call.export];
  if (typeof fn !== 'function') {
    throw new TypeError(
      `Expected module ${call.module} to export a function \`${call.export}\`, got ${describe(fn)}`,
    );
  }
  return await (fn as (...args: readonly unknown[]) => unknown)(...call.args);
}
