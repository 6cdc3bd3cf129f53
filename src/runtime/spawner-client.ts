import { type ChildProcess, spawn } from 'node:child_process';
import { ValidationError } from '../core/errors.ts';
import {
  encodeCancel,
  encodeRemoval,
  encodeRequest,
  parseSpawnerLine,
  type SpawnerLine,
  type SpawnRequest,
  type SpawnUser,
} from './spawner-protocol.ts';

/**
 * How a wrapper's end came to be known: `exited` as the spawner reaped it; `orphaned` when the
 * spawner died first, so its end must be watched another way (by identity, as adopted jobs are).
 */
export type WrapperEnd = 'exited' | 'orphaned';

/** The answer to one start request. */
export type SpawnReply =
  | {
      readonly kind: 'started';
      readonly jobPid: number;
      readonly jobTicks: number;
      readonly wrapperPid: number;
      readonly wrapperTicks: number;
      /** Settles when the wrapper has ended (after writing the exit record) or was orphaned. */
      readonly exited: Promise<WrapperEnd>;
    }
  /** The job's process never existed: fork, pipe or output-file creation failed. */
  | { readonly kind: 'refused'; readonly reason: string }
  /** The spawner died with this request in flight: the job directory's identity file tells. */
  | { readonly kind: 'unknown' };

/** The answer to a removal (`removeBelow`). */
export type RemovalReply =
  | { readonly kind: 'removed' }
  /** Something is left below the directory: what the walk could not remove first, or why it ended. */
  | { readonly kind: 'failed'; readonly reason: string };

/** Who waits for the answer to one request. */
interface Waiter {
  readonly answer: (line: Exclude<SpawnerLine, { type: 'exit' }>) => void;
  /** The spawner ended before it answered; `refusal` when it never ran. */
  readonly ended: (refusal?: string) => void;
}

export interface SpawnerClientOptions {
  /** The spawner executable (see `spawnerPath()`). */
  readonly path: string;
  /** Receives each line the spawner writes to its stderr, and news of its restarts. */
  readonly log: (line: string) => void;
  /**
   * Fork each job's process and have it join its cgroups, never creating it in its v2 cgroup with
   * clone3 nor sharing the wrapper's memory: what the spawner does on kernels before 5.7, for
   * tests of that path. Default false.
   */
  readonly forkOnly?: boolean;
  /**
   * The `cgroup.procs` file of the jobs' CPU group (`Cgroups.cpuGroupProcs`), which the spawner
   * joins before its first fork, so that it, its wrappers and their jobs share the CPU with the
   * server as one group. A spawner that cannot join logs why (`log`) and runs jobs as before.
   */
  readonly cpuGroup?: string;
  /**
   * How long a start may go unanswered (ms), a positive integer; default 30 s
   * (`DEFAULT_SPAWN_TIMEOUT_MS`). A wrapper that has not answered by then is stuck (the job's
   * working directory or command on a hung NFS or FUSE mount, say): the spawner kills it and the
   * job's process, before its command began, and refuses the start (`its start did not finish in
   * time`). Kept by the spawner itself, on its own clock: it is the wrappers' parent, so that its
   * kill cannot reach a process that merely reused a wrapper's pid, and it has no pid of the job's
   * process to tell before its answer.
   */
  readonly spawnTimeoutMs?: number;
}

/** `SpawnerClientOptions.spawnTimeoutMs` when none is given. */
export const DEFAULT_SPAWN_TIMEOUT_MS = 30_000;

/** What a stage of a failed start means, for the job's reason. */
const STAGE_TEXT: Record<string, string> = {
  fork: 'could not create its process',
  exec: 'could not create its process',
  stdio: 'could not create its output files',
  request: 'could not send it to the spawner',
  namespace: 'could not create its namespaces',
  timeout: 'its start did not finish in time',
};

/** One spawner process and what is waiting on it. */
interface Generation {
  readonly proc: ChildProcess;
  readonly pending: Map<string, Waiter>;
  readonly exits: Map<number, (end: WrapperEnd) => void>;
  readonly queue: Buffer[];
  flushScheduled: boolean;
  text: string;
  ended: boolean;
  /** Set once the process exists: a spawn that failed (ENOENT, EAGAIN) never received anything. */
  spawned: boolean;
}

/**
 * Talks to the native spawner (src/runtime/native/jobworker-spawner.c): the server never forks.
 * Requests made in one turn of the event loop go out in one write; replies are matched by
 * request id. A spawner that dies is replaced at the next request: its requests in flight are
 * answered `unknown` and its wrappers `orphaned` only once every wrapper it was starting has
 * decided (they hold its stdout open until then), so the job directories tell the truth.
 */
export class SpawnerClient {
  readonly #options: SpawnerClientOptions;
  #gen: Generation | undefined;
  #nextId = 1;
  #closed = false;
  #launches = 0;

  constructor(options: SpawnerClientOptions) {
    const timeout = options.spawnTimeoutMs;
    if (timeout !== undefined && !(Number.isSafeInteger(timeout) && timeout > 0))
      throw ValidationError.expected('spawnTimeoutMs', 'a positive integer (milliseconds)', timeout);
    this.#options = options;
  }

  /** How many spawner processes were started (it starts at the first job; more means restarts). */
  get launches(): number {
    return this.#launches;
  }

  /** The running spawner's pid, if one runs. */
  get pid(): number | undefined {
    return this.#gen?.proc.pid;
  }

  start(request: SpawnRequest): Promise<SpawnReply> {
    if (this.#closed) return Promise.resolve({ kind: 'refused', reason: 'the job engine is closing' });
    let frame: Buffer;
    let gen: Generation;
    try {
      frame = encodeRequest(String(this.#nextId), request);
      gen = this.#gen ?? this.#launch();
    } catch (err) {
      return Promise.resolve({ kind: 'refused', reason: (err as Error).message });
    }
    const id = String(this.#nextId++);
    return new Promise((resolve) => {
      gen.pending.set(id, {
        answer: (line) => resolve(this.#started(gen, line)),
        ended: (refusal) =>
          resolve(refusal === undefined ? { kind: 'unknown' } : { kind: 'refused', reason: refusal }),
      });
      this.#send(gen, frame);
    });
  }

  /**
   * Removes everything below `dir` (not `dir` itself) as `user`, in a child of the spawner that
   * becomes that account first: the server forks nothing for it. `signal` ends it: the spawner
   * kills the walk, and the reply (`failed`, with the signal's reason) comes once the walk has
   * ended. A removal that the spawner's death left unknown is sent once more, to its successor: the
   * walk died with its spawner, and one done twice removes nothing more.
   */
  async removeBelow(dir: string, user: SpawnUser, signal?: AbortSignal): Promise<RemovalReply> {
    const reply = await this.#removeOnce(dir, user, signal);
    if (reply !== 'unknown') return reply;
    const again = await this.#removeOnce(dir, user, signal);
    return again === 'unknown'
      ? { kind: 'failed', reason: 'the spawner stopped during the removal, twice' }
      : again;
  }

  #removeOnce(dir: string, user: SpawnUser, signal?: AbortSignal): Promise<RemovalReply | 'unknown'> {
    if (this.#closed) return Promise.resolve({ kind: 'failed', reason: 'the job engine is closing' });
    if (signal?.aborted) return Promise.resolve({ kind: 'failed', reason: String(signal.reason) });
    let frame: Buffer;
    let gen: Generation;
    try {
      frame = encodeRemoval(String(this.#nextId), dir, user);
      gen = this.#gen ?? this.#launch();
    } catch (err) {
      return Promise.resolve({ kind: 'failed', reason: (err as Error).message });
    }
    const id = String(this.#nextId++);
    return new Promise((resolve) => {
      const cancel = (): void => {
        if (!gen.ended) this.#send(gen, encodeCancel(id));
      };
      signal?.addEventListener('abort', cancel, { once: true });
      const settle = (reply: RemovalReply | 'unknown'): void => {
        signal?.removeEventListener('abort', cancel);
        // Cancelled: what ended the walk is the caller's reason, not the kill the spawner saw.
        resolve(
          reply !== 'unknown' && reply.kind === 'removed' ? reply : signal?.aborted ? aborted(signal) : reply,
        );
      };
      gen.pending.set(id, {
        answer: (line) =>
          settle(
            line.type === 'removed'
              ? { kind: 'removed' }
              : {
                  kind: 'failed',
                  reason: line.type === 'err' ? line.message : `unexpected answer: ${line.type}`,
                },
          ),
        ended: (refusal) => settle(refusal === undefined ? 'unknown' : { kind: 'failed', reason: refusal }),
      });
      this.#send(gen, frame);
    });
  }

  /** Queues FRAME for this turn of the event loop's write. */
  #send(gen: Generation, frame: Buffer): void {
    gen.queue.push(frame);
    this.#ref(gen);
    if (!gen.flushScheduled) {
      gen.flushScheduled = true;
      setImmediate(() => this.#flush(gen));
    }
  }

  /** Ends the spawner (wrappers and jobs go on); replies still due settle as the spawner goes. */
  close(): void {
    this.#closed = true;
    const gen = this.#gen;
    if (!gen) return;
    if (gen.queue.length > 0) this.#flush(gen);
    gen.proc.stdin?.end();
    this.#unref(gen);
  }

  #launch(): Generation {
    this.#launches++;
    // The padding argument is room for the wrappers' titles (`jobworker-wrapper <job id>`),
    // which they write over the argv area they inherit.
    const proc = spawn(this.#options.path, [' '.repeat(64)], {
      argv0: 'jobworker-spawner',
      env: {
        ...(this.#options.forkOnly === true ? { JOBWORKER_SPAWNER_FORK: '1' } : {}),
        ...(this.#options.cpuGroup ? { JOBWORKER_SPAWNER_CPU_GROUP: this.#options.cpuGroup } : {}),
        JOBWORKER_SPAWNER_START_TIMEOUT_MS: String(this.#options.spawnTimeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const gen: Generation = {
      proc,
      pending: new Map(),
      exits: new Map(),
      queue: [],
      flushScheduled: false,
      text: '',
      ended: false,
      spawned: false,
    };
    proc.once('spawn', () => {
      gen.spawned = true;
    });
    this.#gen = gen;
    proc.stdin?.on('error', () => {}); // EPIPE once it died: 'close' below settles everything
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => this.#read(gen, chunk));
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line) this.#options.log(line);
    });
    proc.on('error', (err) => {
      this.#options.log(`jobworker-spawner: ${err.message}`);
      this.#end(gen, gen.spawned ? undefined : `could not start the spawner: ${err.message}`);
    });
    proc.on('close', (code, signal) => {
      if (!this.#closed) this.#options.log(`jobworker-spawner ended (${signal ?? `code ${code}`})`);
      this.#end(gen);
    });
    return gen;
  }

  #flush(gen: Generation): void {
    gen.flushScheduled = false;
    if (gen.ended || gen.queue.length === 0) return;
    const bytes = gen.queue.length === 1 ? gen.queue[0]! : Buffer.concat(gen.queue);
    gen.queue.length = 0;
    gen.proc.stdin?.write(bytes);
  }

  #read(gen: Generation, chunk: string): void {
    gen.text += chunk;
    let newline = gen.text.indexOf('\n');
    while (newline >= 0) {
      const line = parseSpawnerLine(gen.text.slice(0, newline));
      gen.text = gen.text.slice(newline + 1);
      if (line) this.#handle(gen, line);
      newline = gen.text.indexOf('\n');
    }
    this.#ref(gen);
  }

  #handle(gen: Generation, line: SpawnerLine): void {
    if (line.type === 'exit') {
      gen.exits.get(line.wrapperPid)?.('exited');
      gen.exits.delete(line.wrapperPid);
      return;
    }
    const waiter = gen.pending.get(line.request);
    if (!waiter) {
      // An answer to a request id this client never sends: its ids are numbers, and every request
      // begins with its kind (`start`, `remove`, `cancel`), which a spawner built before the kinds
      // took for the id ("err start request 22 malformed start request"). It speaks another
      // protocol: every request would wait for ever. Each is refused saying so, and it is ended.
      if (line.type === 'err' && !/^[0-9]+$/.test(line.request)) this.#mismatched(gen, line.message);
      return;
    }
    gen.pending.delete(line.request);
    waiter.answer(line);
  }

  /** What the answer to a start says. */
  #started(gen: Generation, line: Exclude<SpawnerLine, { type: 'exit' }>): SpawnReply {
    if (line.type === 'err') {
      const what = STAGE_TEXT[line.stage] ?? 'could not start';
      return { kind: 'refused', reason: `${what}: ${line.message}` };
    }
    if (line.type !== 'ok') return { kind: 'refused', reason: `unexpected answer: ${line.type}` };
    // The `ok` line comes before the wrapper's `exit` line: listening now misses nothing.
    const exited = new Promise<WrapperEnd>((settle) => gen.exits.set(line.wrapperPid, settle));
    return {
      kind: 'started',
      jobPid: line.jobPid,
      jobTicks: line.jobTicks,
      wrapperPid: line.wrapperPid,
      wrapperTicks: line.wrapperTicks,
      exited,
    };
  }

  /** A spawner binary of another version than this server's (see `#handle`): refused, and ended. */
  #mismatched(gen: Generation, said: string): void {
    const reason =
      `the spawner ${this.#options.path} speaks another protocol than this server (it answered "${said}"): ` +
      'it was built from other sources; rebuild it with scripts/build-native.sh (or run scripts/setup.sh)';
    this.#options.log(`jobworker-spawner: ${reason}`);
    this.#end(gen, reason);
    gen.proc.kill('SIGKILL');
  }

  /** The spawner is gone: what it was asked is unknown, unless it never ran (`refusal`). */
  #end(gen: Generation, refusal?: string): void {
    if (gen.ended) return;
    gen.ended = true;
    if (this.#gen === gen) this.#gen = undefined;
    for (const waiter of gen.pending.values()) waiter.ended(refusal);
    for (const settle of gen.exits.values()) settle('orphaned');
    gen.pending.clear();
    gen.exits.clear();
  }

  /** The spawner keeps the server's event loop alive only while something waits on it. */
  #ref(gen: Generation): void {
    if (this.#closed || gen.pending.size + gen.exits.size === 0) {
      this.#unref(gen);
      return;
    }
    gen.proc.ref();
    for (const stream of [gen.proc.stdout, gen.proc.stderr]) (stream as { ref?: () => void } | null)?.ref?.();
  }

  #unref(gen: Generation): void {
    gen.proc.unref();
    for (const stream of [gen.proc.stdout, gen.proc.stderr])
      (stream as { unref?: () => void } | null)?.unref?.();
  }
}

/** A removal ended by its caller: the signal's reason. */
function aborted(signal: AbortSignal): RemovalReply {
  return { kind: 'failed', reason: String(signal.reason) };
}
