/**
 * The thread that hosts polling tasks whose `run`/`poll` block (synchronous I/O, a busy check):
 * each task object lives here, made by its module's factory export, and is called by message.
 * One call at a time, so a blocking poll delays the other off-thread polls, never the program.
 */
import { parentPort } from 'node:worker_threads';
import { describe } from '../core/errors.ts';
import type { PollingTask, PollResult } from './task-types.ts';

export type PollerRequest =
  | {
      readonly seq: number;
      readonly op: 'create';
      readonly id: string;
      readonly module: string;
      readonly export: string;
      readonly args: readonly unknown[];
    }
  | { readonly seq: number; readonly op: 'run' | 'poll' | 'cancel'; readonly id: string };

export type PollerReply =
  | { readonly seq: number; readonly ok: true; readonly value?: unknown }
  | {
      readonly seq: number;
      readonly ok: false;
      readonly error: { readonly name: string; readonly message: string };
    };

const tasks = new Map<string, PollingTask>();

async function handle(m: PollerRequest): Promise<unknown> {
  if (m.op === 'create') {
    const loaded = (await import(m.module)) as Record<string, unknown>;
    const factory = loaded[m.export];
    if (typeof factory !== 'function') {
      throw new TypeError(
        `Expected module ${m.module} to export a function \`${m.export}\`, got ${describe(factory)}`,
      );
    }
    tasks.set(m.id, (await factory(...m.args)) as PollingTask);
    return undefined;
  }
  const task = tasks.get(m.id);
  if (!task) throw new Error(`No polling task ${m.id} on the poller thread`);
  if (m.op === 'run') return void (await task.run());
  if (m.op === 'cancel') {
    tasks.delete(m.id);
    return void (await task.cancel?.());
  }
  const result = (await (task.poll ?? task.checkOutput)?.call(task)) as PollResult | undefined;
  if (result?.done) tasks.delete(m.id);
  return result;
}

function fail(m: PollerRequest, error: unknown): void {
  if (m.op !== 'create') tasks.delete(m.id);
  const e =
    error instanceof Error
      ? { name: error.name, message: error.message }
      : { name: 'Error', message: String(error) };
  parentPort?.postMessage({ seq: m.seq, ok: false, error: e } satisfies PollerReply);
}

parentPort?.on('message', (m: PollerRequest) => {
  handle(m).then(
    (value) => {
      try {
        parentPort?.postMessage({ seq: m.seq, ok: true, value } satisfies PollerReply);
      } catch (error) {
        // A value that cannot be cloned (a function, a socket) fails its own task. Thrown on,
        // it would end the thread, and with it every task polled here.
        fail(m, error);
      }
    },
    (error: unknown) => fail(m, error),
  );
});
