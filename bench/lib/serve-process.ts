import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { ApiClient } from './api-client.ts';
import { rssBytes } from './proc.ts';
import { makeScratchDir, removeAfterRun, serverTempEnv } from './scratch-dirs.ts';
import { stopAllJobs } from './stop-all-jobs.ts';

const LAUNCHER = new URL('../../bin/jobworker', import.meta.url).pathname;

/**
 * `jobworker serve` exactly as a user starts it (`bin/jobworker`: the launcher, its Node flags,
 * the emitted JavaScript of dist/ when current), on a fresh data directory, so that what is
 * measured is the product's own process. Unlike `ServerHandle` it cannot be asked for a garbage
 * collection: its RSS is what a user would see.
 */
export class ServeProcess {
  readonly #child: ChildProcess;
  readonly dataDir: string;
  readonly url: string;
  readonly api: ApiClient;
  #closed: Promise<void> | undefined;

  private constructor(child: ChildProcess, dataDir: string, url: string, token: string, ca?: string) {
    this.#child = child;
    this.dataDir = dataDir;
    this.url = url;
    this.api = new ApiClient(url, token, { maxSockets: 64, ...(ca === undefined ? {} : { ca }) });
  }

  /**
   * `args`: more `serve` options (`--store URL --node-id n1` for a node of a cluster). Plain HTTP on
   * loopback, like the bench's other servers (bench/server-process.ts), unless `tls`: then as
   * `serve` starts by default, with TLS and a CA of its own, which the client trusts. `dataDir`:
   * the data directory of a server started (and closed) before, to start it again; else a new one.
   */
  static async start(options: {
    logLevel: string;
    args?: readonly string[];
    tls?: boolean;
    dataDir?: string;
  }): Promise<ServeProcess> {
    const dataDir = options.dataDir ?? (await makeScratchDir('jw-bench-serve-'));
    const args = ['serve', '--json', ...(options.tls ? [] : ['--insecure-http']), '--listen', '127.0.0.1:0'];
    args.push('--data-dir', dataDir);
    args.push('--log-level', options.logLevel, ...(options.args ?? []));
    const env = { ...process.env, ...(await serverTempEnv()) };
    const child = spawn(LAUNCHER, args, { stdio: ['ignore', 'pipe', 'ignore'], env });
    try {
      // One JSON document on stdout says where the server is; stdout stays open after it.
      const where = await new Promise<{ url: string; adminTokenFile: string; caFile: string | null }>(
        (resolve, reject) => {
          let text = '';
          child.stdout!.setEncoding('utf8');
          child.stdout!.on('data', (chunk: string) => {
            text += chunk;
            try {
              resolve(JSON.parse(text));
            } catch {
              // Not the whole document yet.
            }
          });
          child.once('exit', (code) =>
            reject(new Error(`jobworker serve exited with ${String(code)} first`)),
          );
        },
      );
      const token = (await readFile(where.adminTokenFile, 'utf8')).trim();
      const ca = where.caFile === null ? undefined : await readFile(where.caFile, 'utf8');
      return new ServeProcess(child, dataDir, where.url, token, ca);
    } catch (err) {
      child.kill('SIGKILL');
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  get pid(): number {
    return this.#child.pid!;
  }

  rss(): number {
    return rssBytes(this.pid);
  }

  /** Stops every job still running, then the server (SIGTERM); its data directory goes after the run. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    try {
      await stopAllJobs(this.api);
    } finally {
      this.api.close();
      if (this.#child.exitCode === null && this.#child.signalCode === null) {
        const exited = once(this.#child, 'exit');
        this.#child.kill('SIGTERM');
        await exited;
      }
      removeAfterRun(this.dataDir);
    }
  }
}
