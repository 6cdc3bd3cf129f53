import { isFinal } from '../core/job.ts';
import { ApiClient } from './api-client.ts';
import type { ApiJob, CreateJobBody, JobPage, OutputView } from './api-types.ts';
import { type ClientOptions, toConnection } from './client-options.ts';
import { JobworkerApiError, toClientError } from './errors.ts';
import { readOutputEvents } from './output-events.ts';

/** Which jobs `list` and `jobs` return: the filters of `GET /v1/jobs`. */
export interface ListFilter {
  /** One status (`running`, `succeeded`, ...). */
  readonly status?: string;
  readonly name?: string;
  /** Exact queue name. */
  readonly queue?: string;
  /** The name or the command line contains this, ignoring case; 1 to 200 characters. */
  readonly text?: string;
  /** `key=value` labels, all of which a job must carry. */
  readonly label?: readonly string[];
  /** Jobs per page (the server's default and cap apply). */
  readonly limit?: number;
  /** Where to start: a page's `nextCursor`. */
  readonly cursor?: string;
}

export interface WaitOptions {
  readonly signal?: AbortSignal;
  /** Wait along the job's retries to its last attempt (default), or `false`: for this attempt only. */
  readonly followRetries?: boolean;
}

/** How `runTask` and `result` make a value of a result's JSON text. */
export interface ResultOptions<T> {
  /**
   * Default `JSON.parse`, whose numbers are JavaScript's: an integer above 2^53
   * (`4611686018427387904`) comes back rounded. A parser of your own keeps it, say as a BigInt
   * (`(text) => JSON.parse(text, (_key, value, { source }) => ...)`), or `(text) => text` the text.
   */
  readonly parse?: (text: string) => T;
}

export interface ClientOutputOptions {
  /** Keep reading until the job ends (default), or stop at what is written now (`false`). */
  readonly follow?: boolean;
  /** One stream, or both interleaved in the order the server saw them (default `all`). */
  readonly stream?: OutputView;
  readonly signal?: AbortSignal;
  /**
   * Called where the output cap dropped bytes (the job printed more than the server keeps), before
   * the chunks that follow the gap: `skippedBytes` of `stream` are missing there. Without it, the
   * chunks alone do not show the gap.
   */
  readonly onTruncated?: (skippedBytes: number, stream: 'stdout' | 'stderr') => void;
}

/**
 * A typed client for jobworker's REST API v1 (docs/api.md), over HTTPS verified by the server's
 * CA. Every method rejects with `JobworkerApiError` (typed by `code`) for an error answer and
 * `JobworkerConnectionError` when the server cannot be reached.
 */
export class JobworkerClient {
  readonly #api: ApiClient;
  readonly #reconnectForMs: number | undefined;

  constructor(options: ClientOptions) {
    this.#api = new ApiClient(toConnection(options), { cliHints: false });
    this.#reconnectForMs = options.reconnectForMs;
  }

  /** Submits a job (the spec of docs/api.md); resolves with it as admitted (`queued` or `running`). */
  start(spec: CreateJobBody): Promise<ApiJob> {
    return call(async () => (await this.#api.createJob(spec)).job);
  }

  /** The job now; `NOT_FOUND` for an id the caller cannot see. */
  get(id: string): Promise<ApiJob> {
    return call(() => this.#api.getJob(id));
  }

  /** The pages of jobs matching `filter`, newest first, fetched one at a time as iterated. */
  async *list(filter: ListFilter = {}): AsyncGenerator<JobPage> {
    let cursor = filter.cursor;
    for (;;) {
      const page = await call(() =>
        this.#api.listJobs({ ...filter, label: filter.label ? [...filter.label] : undefined, cursor }),
      );
      yield page;
      if (page.nextCursor === null) return;
      cursor = page.nextCursor;
    }
  }

  /** The jobs of every page of `list(filter)`, one by one. */
  async *jobs(filter: ListFilter = {}): AsyncGenerator<ApiJob> {
    for await (const page of this.list(filter)) yield* page.jobs;
  }

  /**
   * Stops a job: SIGTERM to its process tree, SIGKILL after `graceMs` (the server's default when
   * left out). A queued job is cancelled at once; one already finished is a 409.
   */
  stop(id: string, options: { graceMs?: number } = {}): Promise<ApiJob> {
    return call(() => this.#api.stopJob(id, options.graceMs));
  }

  /**
   * Resolves with the job once it has finished, whatever its status. A job its retry policy ran
   * again (`retriedAs`) has not finished while its retry may still run: the wait goes on along its
   * attempts and resolves with the last (its `id` is that attempt's; `followRetries: false` waits
   * for the one attempt `id` names). It follows each job's output stream to its `end` event rather
   * than polling, so it learns of the end at once and rides out a server restart the way `output`
   * does; the price is that the output crosses the wire.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<ApiJob> {
    let job = await this.#waitOne(id, options.signal);
    // The server stores an attempt's end and its retry at once: an ended attempt without
    // `retriedAs` is the last, never retried later.
    // `?? null`: a server from before retries sends no `retriedAs` at all.
    for (
      let next = job.retriedAs ?? null;
      options.followRetries !== false && next !== null;
      next = job.retriedAs ?? null
    ) {
      try {
        job = await this.#waitOne(next, options.signal);
      } catch (error) {
        // Deleted since (by its owner, by retention): the last attempt that remains is the answer.
        if (error instanceof JobworkerApiError && error.code === 'NOT_FOUND') return job;
        throw error;
      }
    }
    return job;
  }

  async #waitOne(id: string, signal: AbortSignal | undefined): Promise<ApiJob> {
    const now = await this.get(id);
    if (isFinal(now.status)) return now;
    return call(async () => {
      for await (const event of this.#events(id, { view: 'all', follow: true, signal })) {
        if (event.type === 'end') return event.job;
      }
      // The stream only ends early without `follow`; read the job as it is.
      return this.#api.getJob(id);
    });
  }

  /**
   * Runs a named task of the server (docs/tasks.md) and resolves with its result: the JSON value
   * it left at `JOBWORKER_RESULT` (`null` when it left none), made by `options.parse` (default
   * `JSON.parse`, which rounds integers above 2^53). A task with a `retry` policy is waited for
   * along its attempts (as `wait` does), and its result is its last attempt's. A run that does not
   * succeed rejects with `JobworkerApiError` code `JOB_FAILED`, whose message names its exit and
   * the last lines of its stderr; bad parameters with `VALIDATION_FAILED` naming `params.<name>`.
   */
  async runTask<T = unknown>(
    name: string,
    params: Readonly<Record<string, unknown>> = {},
    options: { signal?: AbortSignal } & ResultOptions<T> = {},
  ): Promise<T> {
    const job = await call(() => this.#api.runTask(name, params));
    const last = await this.wait(job.id, { signal: options.signal });
    return this.result(last.id, options);
  }

  /**
   * The result a finished job left (see `runTask`); of a retried job, its latest attempt's.
   * `NOT_FINISHED` before it ends, and while its retry waits or runs.
   */
  async result<T = unknown>(id: string, options: ResultOptions<T> = {}): Promise<T> {
    const text = await call(() => this.#api.getJobResultText(id));
    return options.parse ? options.parse(text) : (JSON.parse(text) as T);
  }

  /**
   * The job's output as chunks of bytes, exactly as written, from the first byte the server still
   * keeps: bytes the output cap dropped (or the job truncated away itself) are told to `onTruncated`. Following, a dropped connection
   * (a server restart) is resumed from the cursor of the last chunk, so every byte comes once, in
   * order.
   */
  async *output(id: string, options: ClientOutputOptions = {}): AsyncGenerator<Buffer> {
    const events = this.#events(id, {
      view: options.stream ?? 'all',
      follow: options.follow ?? true,
      signal: options.signal,
    });
    try {
      for await (const event of events) {
        if (event.type === 'output') yield event.data;
        else if (event.type === 'truncated')
          options.onTruncated?.(event.skippedBytes ?? 0, event.stream === 'stderr' ? 'stderr' : 'stdout');
      }
    } catch (error) {
      throw toClientError(error);
    }
  }

  #events(id: string, options: { view: OutputView; follow: boolean; signal: AbortSignal | undefined }) {
    return readOutputEvents(this.#api, id, {
      ...options,
      reconnectSetting: 'the option `reconnectForMs`',
      ...(this.#reconnectForMs === undefined ? {} : { reconnectForMs: this.#reconnectForMs }),
    });
  }
}

async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    throw toClientError(error);
  }
}
