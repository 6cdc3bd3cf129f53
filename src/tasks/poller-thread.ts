import { Worker } from 'node:worker_threads';
import { ValidationError } from '../core/errors.ts';
import type { BlockingCall } from './blocking-worker.ts';
import type { PollerReply, PollerRequest } from './poller-thread-main.ts';
import type { PollingTask, PollResult } from './task-types.ts';

type Request = PollerRequest extends infer R ? (R extends unknown ? Omit<R, 'seq'> : never) : never;

/**
 * The main side of the poller thread (poller-thread-main.ts): started on the first off-thread
 * polling task, one for the manager. Not a piscina pool: a task object must stay on the thread
 * that made it between calls, and piscina picks any thread.
 */
export class PollerThread {
  #worker: Worker | undefined;
  #seq = 0;
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();

  /** A polling task whose object lives on the poller thread, made by `call`'s factory export. */
  task(id: string, call: BlockingCall): PollingTask {
    // A cancel that comes while the thread is still making the object (importing its module,
    // awaiting its factory) would find none there: it waits for the object, cancels it, and the
    // object is never run. Its promise settles only then, which is what `close()` waits for.
    let created: Promise<unknown> | undefined;
    let cancelled = false;
    return {
      name: call.export,
      run: async () => {
        created = this.#call({ op: 'create', id, ...call });
        await created;
        if (!cancelled) await this.#call({ op: 'run', id });
      },
      poll: () => this.#call({ op: 'poll', id }) as Promise<PollResult>,
      cancel: async () => {
        cancelled = true;
        // Not made: nothing to cancel there (a failed factory is the task's failure, not this).
        if (
          created !== undefined &&
          !(await created.then(
            () => true,
            () => false,
          ))
        )
          return;
        await this.#call({ op: 'cancel', id });
      },
    };
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }

  #call(request: Request): Promise<unknown> {
    this.#worker ??= this.#start();
    const worker = this.#worker;
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      try {
        worker.postMessage({ ...request, seq });
      } catch (error) {
        // Not sent, so nothing will answer it: registered, it would be held for the thread's life.
        reject(request.op === 'create' ? uncloneable(request.args, error) : error);
        return;
      }
      // The answer comes on a later turn of the event loop, never before this.
      this.#pending.set(seq, { resolve, reject });
    });
  }

  #start(): Worker {
    const worker = new Worker(siblingModule('poller-thread-main'));
    // The manager's own keep-alive holds the process while tasks are pending; the thread must not.
    worker.unref();
    worker.on('message', (reply: PollerReply) => {
      const pending = this.#pending.get(reply.seq);
      this.#pending.delete(reply.seq);
      if (!pending) return;
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name }));
    });
    const failAll = (error: Error) => {
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
      if (this.#worker === worker) this.#worker = undefined;
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`The poller thread exited (code ${code})`)));
    return worker;
  }
}

/**
 * What `postMessage` threw for a factory's `args`: a DataCloneError ("() => 1 could not be cloned")
 * becomes a ValidationError naming the first argument the thread cannot be given a copy of.
 */
function uncloneable(args: readonly unknown[], error: unknown): unknown {
  if (!(error instanceof DOMException && error.name === 'DataCloneError')) return error;
  const i = args.findIndex((arg) => {
    try {
      structuredClone(arg);
      return false;
    } catch {
      return true;
    }
  });
  const expected = 'structured-cloneable (the poller thread is given a copy)';
  return i < 0
    ? ValidationError.expected('args', expected, args)
    : ValidationError.expected(`args[${i}]`, expected, args[i]);
}

/** This folder's `name` module, as .ts from the sources or .js from dist/ (the build keeps the layout). */
function siblingModule(name: string): URL {
  return new URL(`./${name}${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
}
