import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiClient } from './api-client.ts';
import { ChildHandle } from './child-handle.ts';
import { childrenCpuSeconds, cpuSeconds, mainThreadSchedule, rssBytes } from './proc.ts';
import { makeScratchDir, removeAfterRun, serverTempEnv } from './scratch-dirs.ts';
import { stopAllJobs } from './stop-all-jobs.ts';

const SERVER_PROCESS = new URL('../server-process.ts', import.meta.url).pathname;
/** The Node flags `bin/jobworker` gives `jobworker serve`, so that the bench measures the same heap. */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=16', '--expose-gc'] as const;
/** The malloc tuning `bin/jobworker` gives `jobworker serve`. */
export const SERVER_ENV = {
  MALLOC_MMAP_THRESHOLD_: '65536',
  MALLOC_TRIM_THRESHOLD_: '131072',
  MALLOC_ARENA_MAX: '2',
} as const;

export interface ServerStartOptions {
  /** pino level of the server; `info` is what `jobworker serve` runs with. Logs go to /dev/null. */
  readonly logLevel: string;
  /** Sockets the bench's API client may open at once. */
  readonly maxSockets?: number;
  /** Leave the data directory in place at close (the caller removes it). */
  readonly keepDataDir?: boolean;
}

/** A real jobworker server in its own process, on a fresh temporary data directory. */
export class ServerHandle {
  readonly #child: ChildHandle;
  readonly dataDir: string;
  readonly url: string;
  readonly token: string;
  readonly api: ApiClient;
  #closed: Promise<void> | undefined;

  readonly #keepDataDir: boolean;

  private constructor(child: ChildHandle, dataDir: string, token: string, options: ServerStartOptions) {
    this.#child = child;
    this.#keepDataDir = options.keepDataDir ?? false;
    this.dataDir = dataDir;
    this.url = child.ready.url;
    this.token = token;
    this.api = new ApiClient(this.url, token, { maxSockets: options.maxSockets ?? 64 });
  }

  static async start(options: ServerStartOptions): Promise<ServerHandle> {
    const dataDir = await makeScratchDir('jw-bench-');
    try {
      // SERVER_NODE_FLAGS (--expose-gc among them) also lets a scenario ask for a collection before
      // reading the RSS; JW_BENCH_SERVER_ARGS adds Node options for the server alone (`--cpu-prof`).
      const extra = process.env.JW_BENCH_SERVER_ARGS?.split(' ').filter(Boolean) ?? [];
      const child = await ChildHandle.start(
        SERVER_PROCESS,
        [dataDir, options.logLevel],
        [...SERVER_NODE_FLAGS, ...extra],
        { ...SERVER_ENV, ...(await serverTempEnv()) },
      );
      const token = (await readFile(child.ready.adminTokenFile!, 'utf8')).trim();
      return new ServerHandle(child, dataDir, token, options);
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** The job directory of `id`, where its `stdout` file is. */
  jobDir(id: string): string {
    return join(this.dataDir, 'jobs', id);
  }

  rss(): number {
    return rssBytes(this.pid);
  }

  cpu(): number {
    return cpuSeconds(this.pid);
  }

  /** CPU seconds of the server's children and what they reaped: the spawner, wrappers and jobs. */
  childrenCpu(): number {
    return childrenCpuSeconds(this.pid);
  }

  /** Seconds the server's main thread (its event loop) ran on a core, and waited for one. */
  mainThread(): { running: number; waiting: number } {
    return mainThreadSchedule(this.pid);
  }

  /** Runs a full garbage collection in the server. */
  async gc(): Promise<void> {
    await this.#child.ask({ type: 'gc' }, 'gc:done');
  }

  /**
   * How long the server's event loop has been busy and idle so far, in ms, and the longest it
   * stalled since the last call (`maxDelayMs`).
   */
  async eventLoop(): Promise<{ active: number; idle: number; maxDelayMs: number }> {
    const { active, idle, maxDelayMs } = await this.#child.ask({ type: 'elu' }, 'elu:done');
    return { active, idle, maxDelayMs };
  }

  /** Stops every job still running and closes the server; its data directory goes after the run. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    try {
      await stopAllJobs(this.api);
    } finally {
      this.api.close();
      await this.#child.close();
      if (!this.#keepDataDir) removeAfterRun(this.dataDir);
    }
  }
}
