import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { ValidationError } from '../core/errors.ts';
import type { BlockingCall } from './blocking-worker.ts';
import type { BlockingSpec } from './task-types.ts';

/**
 * The worker threads blocking tasks run on: piscina (made for this, and well kept), started on
 * the first blocking task so a manager with only polling tasks starts no thread.
 */
export class BlockingPool {
  readonly #threads: number;
  #pool: Piscina | undefined;

  constructor(threads: number) {
    this.#threads = threads;
  }

  /** Runs one call; `signal` aborts it, terminating its thread if it already runs. */
  run(call: BlockingCall, signal: AbortSignal): Promise<unknown> {
    this.#pool ??= new Piscina({
      filename: siblingModule('blocking-worker').href,
      minThreads: this.#threads,
      maxThreads: this.#threads,
    });
    return this.#pool.run(call, { signal });
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.destroy();
  }
}

/** A blocking spec as the worker takes it: a `file:` URL, plain arguments. */
export function toBlockingCall(spec: BlockingSpec): BlockingCall {
  let module: string;
  if (spec.module instanceof URL) module = spec.module.href;
  else if (typeof spec.module === 'string' && spec.module.startsWith('file:')) module = spec.module;
  else if (typeof spec.module === 'string' && isAbsolute(spec.module))
    module = pathToFileURL(spec.module).href;
  else throw ValidationError.expected('module', 'an absolute path or a file: URL', spec.module);
  if (typeof spec.export !== 'string' || spec.export === '') {
    throw ValidationError.expected('export', 'the name of an exported function', spec.export);
  }
  if (spec.args !== undefined && !Array.isArray(spec.args)) {
    throw ValidationError.expected('args', 'an array', spec.args);
  }
  return { module, export: spec.export, args: spec.args ?? [] };
}

/** This folder's `name` module, as .ts from the sources or .js from dist/ (the build keeps the layout). */
function siblingModule(name: string): URL {
  return new URL(`./${name}${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
}
