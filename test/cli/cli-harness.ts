import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type RunningServer, runServer } from '../../src/main.ts';
import { testServerOptions } from '../api/api-harness.ts';
import { trustServerCa } from '../helpers/trust-server.ts';
import { killProcessGroup } from '../helpers/wait.ts';

export const REPO = new URL('../../', import.meta.url).pathname;
/**
 * The CLI as `bin/jobworker` runs it: the bundle `scripts/build.sh` made (scripts/test.sh runs
 * it), which runs the TypeScript sources itself when they changed since (src/cli/bundle-entry.ts),
 * else the sources. Hundreds of CLI processes start in the suite, and loading modules is most of
 * their cost.
 */
export const CLI_MAIN = cliMain();
export const LAUNCHER = join(REPO, 'bin/jobworker');

export interface TestServer {
  readonly server: RunningServer;
  readonly dataDir: string;
  readonly token: string;
  /** The environment for a CLI child: this server, its admin token, nothing inherited that could interfere. */
  readonly env: NodeJS.ProcessEnv;
  /** Closes the server (jobs keep running) and starts a new one on the same port and data directory. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** A log stream that drops everything (a test server's logs). */
export const quiet = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });

/** A real server on an ephemeral port with a fresh data directory. */
export async function startTestServer(): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'jw-cli-'));
  const accounts = await testServerOptions();
  let server = await runServer({ listen: '127.0.0.1:0', dataDir, logStream: quiet(), ...accounts });
  trustServerCa(server.caFile);
  const token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  const env = baseEnv({
    JOBWORKER_URL: server.url,
    JOBWORKER_TOKEN: token,
    JOBWORKER_CA: server.caFile ?? '',
  });
  return {
    get server() {
      return server;
    },
    dataDir,
    token,
    env,
    async restart() {
      const { host } = new URL(server.url);
      await server.close();
      server = await runServer({ listen: host, dataDir, logStream: quiet(), ...accounts });
    },
    async close() {
      // A test that failed half-way may have left jobs running: they must not outlive the suite.
      const running = await fetch(new URL('v1/jobs?status=running&limit=100', `${server.url}/`), {
        headers: { authorization: `Bearer ${token}` },
      });
      const { jobs } = (await running.json()) as { jobs: { pid: number | null }[] };
      for (const { pid } of jobs) {
        try {
          if (pid !== null) killProcessGroup(pid);
        } catch {
          // Gone already.
        }
      }
      await server.close();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10 });
      await rm(accounts.homesDir!, { recursive: true, force: true, maxRetries: 10 });
    },
  };
}

/**
 * PATH and HOME only, plus `extra`: no JOBWORKER_* or NO_COLOR from the developer's shell, but for
 * `JOBWORKER_ADMIN_RUN_AS=root`: a server started with it runs admin jobs as root, as the suites'
 * jobs expect (see `testServerOptions`).
 */
export function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: tmpdir(),
    LANG: 'C.UTF-8',
    JOBWORKER_ADMIN_RUN_AS: 'root',
    ...extra,
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A CLI process whose output is collected as it comes. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly progress = new EventEmitter();
  private readonly exited: Promise<CliResult>;

  constructor(args: readonly string[], env: NodeJS.ProcessEnv, command: string = process.execPath) {
    const argv = command === process.execPath ? [CLI_MAIN, ...args] : [...args];
    this.child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      this.stdout += text;
      this.progress.emit('stdout');
    });
    this.child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.stderr += text;
    });
    this.exited = once(this.child, 'close').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
      stdout: this.stdout,
      stderr: this.stderr,
    }));
  }

  /** Resolves once stdout contains `text` (rejects if the process exits first). */
  waitForStdout(text: string): Promise<string> {
    return this.waitUntil((stdout) => stdout.includes(text), JSON.stringify(text));
  }

  /** Resolves once `test(stdout)` holds (rejects if the process exits first). */
  async waitUntil(test: (stdout: string) => boolean, what = 'the expected output'): Promise<string> {
    while (!test(this.stdout)) {
      const more = once(this.progress, 'stdout').then(() => true);
      const ended = this.exited.then(() => false);
      if (!(await Promise.race([more, ended])) && !test(this.stdout)) {
        throw new Error(`exited before printing ${what}; stdout: ${this.stdout}; stderr: ${this.stderr}`);
      }
    }
    return this.stdout;
  }

  result(): Promise<CliResult> {
    return this.exited;
  }
}

/** Runs the CLI (`node src/cli/main.ts ARGS`) to its end. */
export function jobworker(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new CliProcess(args, env).result();
}

/** Runs the CLI and parses its stdout as the one JSON document it must be. */
export async function jobworkerJson<T>(args: readonly string[], env: NodeJS.ProcessEnv): Promise<T> {
  const result = await jobworker(['--json', ...args], env);
  if (result.code !== 0)
    throw new Error(`jobworker ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

function cliMain(): string {
  const bundle = join(REPO, 'dist/jobworker.cjs');
  return existsSync(bundle) ? bundle : join(REPO, 'src/cli/main.ts');
}
