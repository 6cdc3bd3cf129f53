import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseNodeId } from '../config.ts';
import { systemClock } from '../core/clock.ts';
import { ValidationError } from '../core/errors.ts';
import type { Job, OutputStream } from '../core/job.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { JobSpecInput } from '../core/spec.ts';
import { JobEngine } from '../engine/job-engine.ts';
import { checkForLostDatabase, DATABASE_FILE, type LossAcceptance } from '../lost-database.ts';
import { type DataDirLock, lockDataDir } from '../runtime/data-dir-lock.ts';
import type { JobListQuery, JobPage } from '../store/job-store.ts';
import { SqliteJobStore } from '../store/sqlite/sqlite-job-store.ts';

export interface WorkerOptions {
  /**
   * Where jobs and their output live (`<dataDir>/jobworker.db`, `<dataDir>/jobs/<id>`), the same
   * layout as `jobworker serve --data-dir`. Reopening the directory reattaches to its jobs.
   */
  readonly dataDir: string;
  /** Recorded as the owner of every job and stop. Default `worker`. */
  readonly user?: string;
  /** Grace between SIGTERM and SIGKILL when `stop` names none. Default 10 s. */
  readonly defaultGraceMs?: number;
  /**
   * This program's node id, recorded as the `node` of every job it runs (1 to 63 letters, digits,
   * dots, dashes or underscores). Default: the host name, which may change with a new host or
   * container: the jobs left running under another id are taken over at open all the same (the
   * data directory is this Worker's alone), with a warning to keep the id stable.
   */
  readonly node?: string;
  /** Jobs running at once; more wait queued. Default 10,000. */
  readonly maxRunning?: number;
  /**
   * Accepts the loss of the directory's database: when `jobworker.db` is gone (or empty) while
   * job directories remain, `openWorker` refuses (`dataDir`) unless this is true; then it stops
   * every process of those orphaned jobs, moves their directories aside and starts on an empty
   * database, as `jobworker serve --reset-store` does. Default false.
   */
  readonly resetStore?: boolean;
  /**
   * Each job stream keeps at most this many of its newest bytes; older ones are dropped (see
   * `OutputOptions.onTruncated`). Default 1 GiB, as `jobworker serve --output-cap`.
   */
  readonly outputCapBytes?: number;
  readonly logger?: Logger;
}

/** `openWorker({ dataDir, resetStore: true })`. */
const WORKER_RESET_STORE: LossAcceptance = {
  name: 'resetStore',
  howTo: 'open it with `openWorker({ dataDir, resetStore: true })`',
};

/** A piece of a job's output, in order; `cursor` is where reading resumes after it. */
export interface OutputChunk {
  readonly stream: OutputStream;
  readonly data: Buffer;
  readonly cursor: number;
}

export interface OutputOptions {
  /** `stdout`, `stderr`, or `all` (both, in the order written). Default `all`. */
  readonly stream?: 'stdout' | 'stderr' | 'all';
  /** Resume from a chunk's `cursor`. Default 0, the beginning. */
  readonly cursor?: number;
  /** Keep yielding until the job ends (true, the default) or stop at what is written now. */
  readonly follow?: boolean;
  /** Ends the iteration early. */
  readonly signal?: AbortSignal;
  /**
   * Called where the output cap dropped bytes (`WorkerOptions.outputCapBytes`: the job printed
   * more than is kept), before the chunks that follow the gap: `skippedBytes` of `stream` are missing there.
   * Without it, the chunks alone do not show the gap (their cursors jump over it).
   */
  readonly onTruncated?: (skippedBytes: number, stream: 'stdout' | 'stderr') => void;
}

/**
 * jobworker's runtime without a server: start commands as durable jobs, stop them (the whole
 * process tree), read their status and output, wait for them. Jobs outlive the program: `close()`
 * leaves them running and the next `openWorker` on the same `dataDir` reattaches to them.
 */
export class Worker {
  readonly #engine: JobEngine;
  readonly #store: SqliteJobStore;
  /** The data directory's lock, held until `close`. */
  readonly #lock: DataDirLock;
  readonly #user: string;

  private constructor(engine: JobEngine, store: SqliteJobStore, lock: DataDirLock, user: string) {
    this.#engine = engine;
    this.#store = store;
    this.#lock = lock;
    this.#user = user;
  }

  /** Opens (or creates) `dataDir` and reattaches to the jobs it holds. */
  static async open(options: WorkerOptions): Promise<Worker> {
    if (typeof options?.dataDir !== 'string' || options.dataDir === '') {
      throw ValidationError.expected('dataDir', 'a directory path', options?.dataDir);
    }
    if (options.node !== undefined) parseNodeId(options.node, 'node');
    if (options.resetStore !== undefined && typeof options.resetStore !== 'boolean') {
      throw ValidationError.expected('resetStore', 'true or false', options.resetStore);
    }
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    // One process supervises a data directory: a server or another Worker on it would adopt the
    // same jobs (and this store's caches assume it is the database's only writer).
    const lock = await lockDataDir(options.dataDir, '`dataDir`');
    let store: SqliteJobStore | undefined;
    try {
      // Before the store is opened, which would make a new, empty database: as `serve` does.
      await checkForLostDatabase(
        options.dataDir,
        options.resetStore === true,
        options.logger ?? silentLogger,
        WORKER_RESET_STORE,
      );
      // Checkpoints off the embedding process's event loop too (the checkpoint helper).
      store = await SqliteJobStore.open(join(options.dataDir, DATABASE_FILE), {
        checkpoints: {
          clock: systemClock,
          log: (message) => options.logger?.warn({ component: 'store' }, message),
        },
        // No dispatcher here: webhooks a server on this directory has configured would gather
        // its jobs' events in the outbox, all sent at once by the next `serve`.
        webhookOutbox: false,
      });
      const engine = await JobEngine.open({
        dataDir: options.dataDir,
        store,
        ...(options.node === undefined ? {} : { node: options.node }),
        ...(options.defaultGraceMs === undefined ? {} : { defaultGraceMs: options.defaultGraceMs }),
        ...(options.maxRunning === undefined ? {} : { maxRunning: options.maxRunning }),
        ...(options.outputCapBytes === undefined ? {} : { outputCapBytes: options.outputCapBytes }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
      return new Worker(engine, store, lock, options.user ?? 'worker');
    } catch (err) {
      // The open's error is the one to tell; the lock goes back whatever the close does.
      await store?.close().catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  /**
   * Starts a command (`{ command, args?, cwd?, env?, timeoutMs?, ... }`, the job spec of
   * docs/api.md) and resolves with the job once it is admitted; `wait` for its end. A bad spec
   * throws a `ValidationError` naming the field. `notify` is refused: webhooks need `jobworker serve`.
   * Its jobs' events reach no webhook, not even the server-wide ones of a server that used the
   * directory before: nothing is kept for a server to send later.
   */
  async start(spec: JobSpecInput): Promise<Job> {
    // A Worker has no webhook dispatcher: a job's notify would never be sent, its events would
    // pile up in the outbox, and a server opened later on this directory would send them all,
    // to addresses no submission check ever saw.
    if ((spec as { notify?: unknown } | null | undefined)?.notify !== undefined) {
      throw new ValidationError(
        'notify',
        'A Worker sends no webhooks: `notify` needs `jobworker serve`; start the job without it, or through a server',
      );
    }
    return this.#engine.start(spec, { user: this.#user });
  }

  /** Stops a job and its whole process tree (SIGTERM, then SIGKILL after `graceMs`); resolves once it ended. */
  async stop(id: string, options: { graceMs?: number } = {}): Promise<Job> {
    await this.#engine.stop(id, { user: this.#user }, options);
    return this.#engine.waitFor(id);
  }

  /** The job as it is now (`NOT_FOUND` for an unknown id). */
  status(id: string): Promise<Job> {
    return this.#engine.get(id);
  }

  /** A page of jobs, newest first (`{ limit, cursor, status }`; `limit` default 100). */
  list(query: Partial<JobListQuery> = {}): Promise<JobPage> {
    return this.#engine.list({ limit: 100, ...query });
  }

  /**
   * Resolves with the job once it has finished, whatever its status. Rejects with `signal`'s
   * reason when it aborts first, and with an `ILLEGAL_TRANSITION` error when the worker is
   * closed first (the job runs on; a worker opened later on the same data directory reattaches).
   */
  wait(id: string, signal?: AbortSignal): Promise<Job> {
    return this.#engine.waitFor(id, signal);
  }

  /**
   * The job's output as chunks: live until the job ends when `follow` (the default). Bytes the
   * output cap dropped (or the job truncated away itself) are told to `onTruncated`.
   */
  async *output(id: string, options: OutputOptions = {}): AsyncGenerator<OutputChunk> {
    const selector = options.stream ?? 'all';
    let cursor = options.cursor ?? 0;
    if (options.follow === false) {
      for (;;) {
        const page = await this.#engine.readOutput(id, { selector, cursor, limitBytes: 1024 * 1024 });
        for (const e of page.events) {
          if (e.type === 'data') yield { stream: e.stream, data: e.data, cursor: e.cursor };
          else options.onTruncated?.(e.skippedBytes, e.stream);
        }
        if (page.cursor === cursor) return;
        cursor = page.cursor;
      }
    }
    const follow = this.#engine.follow(id, {
      selector,
      cursor,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for await (const event of follow) {
      if (event.type === 'end') return;
      if (event.type === 'progress') continue;
      for (const e of event.events) {
        if (e.type === 'data') yield { stream: e.stream, data: e.data, cursor: e.cursor };
        else options.onTruncated?.(e.skippedBytes, e.stream);
      }
    }
  }

  /** Stops supervising: jobs keep running, and the next `openWorker` on this `dataDir` adopts them. */
  async close(): Promise<void> {
    try {
      try {
        await this.#engine.close();
      } finally {
        await this.#store.close();
      }
    } finally {
      await this.#lock.release();
    }
  }
}

/** `const w = await openWorker({ dataDir })`: see `Worker`. */
export function openWorker(options: WorkerOptions): Promise<Worker> {
  return Worker.open(options);
}
