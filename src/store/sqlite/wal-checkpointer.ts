import { type ChildProcess, spawn } from 'node:child_process';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Readable } from 'node:stream';
import type { Clock, ClockTimer } from '../../core/clock.ts';
import { nativeExecutablePath } from '../../core/native-addon.ts';
import { WAL_CHECKPOINT_PAGES } from './open-sqlite-connection.ts';

/** How often the server asks for a checkpoint while it writes: the WAL holds about this much. */
export const CHECKPOINT_INTERVAL_MS = 250;

/** How soon the next checkpoint is asked for when the last found a quarter of `restartAtFrames` or more in the WAL. */
export const BUSY_INTERVAL_MS = 100;

/** The longest wait before a checkpoint is asked for again after failures in a row. */
export const FAILING_INTERVAL_MAX_MS = 5000;

/**
 * The connection's own automatic checkpoint while the helper runs: a backstop only, for a helper
 * that stalls (or a clock that stands still, as a test's may), so that the WAL never grows
 * without bound. Four times the threshold the WAL is restarted at (`catch-up`, below).
 */
export const BACKSTOP_CHECKPOINT_PAGES = 4 * WAL_CHECKPOINT_PAGES;

/** What a passive checkpoint did: frames in the WAL, and how many of them are now in the database. */
export interface CheckpointResult {
  readonly log: number;
  readonly checkpointed: number;
}

/** The row of `pragma wal_checkpoint`. */
interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

export interface WalCheckpointerOptions {
  /** The helper executable (`checkpointerPath()`). */
  readonly path: string;
  /** The database file, open on `connection`, in WAL mode. */
  readonly database: string;
  /** The server's connection: read for its count of changes, and given its automatic checkpoint back. */
  readonly connection: DatabaseSync;
  /** Times the requests (the server's clock). */
  readonly clock: Clock;
  /** Receives what goes wrong: the helper's stderr, its end, a checkpoint that failed. */
  readonly log: (message: string) => void;
  /** Default `CHECKPOINT_INTERVAL_MS`. */
  readonly intervalMs?: number;
  /** WAL frames past which the connection catches up itself, so that the WAL restarts; default `WAL_CHECKPOINT_PAGES`. */
  readonly restartAtFrames?: number;
}

/**
 * Where the checkpoint helper is: `dist/native/jobworker-checkpointer`, built by
 * scripts/build-native.sh from src/store/sqlite/native/jobworker-checkpointer.c. Undefined when it
 * was not built (no SQLite headers there): the server then checkpoints on its own connection.
 */
export function checkpointerPath(): string | undefined {
  return nativeExecutablePath('jobworker-checkpointer');
}

/**
 * Takes SQLite's checkpoints off the server's event loop. `node:sqlite` runs every statement
 * there, and SQLite's automatic checkpoint runs inside the commit that takes the WAL past its
 * threshold: a copy of up to 8,000 pages and two fsyncs, a stall of 130 ms for every request and
 * follower (docs/performance.md). While the helper process
 * (src/store/sqlite/native/jobworker-checkpointer.c) runs, the connection's automatic checkpoint
 * is only a distant backstop, and every 250 ms while the store is used, if the
 * connection changed anything since the last request (SQLite's `total_changes()`, a counter read
 * in microseconds), the helper is asked for a passive checkpoint, which waits for no reader nor
 * writer. An idle store schedules nothing: an idle server's main thread is not woken.
 *
 * SQLite starts the WAL over from its beginning only at the start of a write, and only when
 * every frame in it is in the database by then. The helper copies the frames there were when its
 * pass began, and the server commits meanwhile, so under steady writes it never catches up, and
 * the WAL would grow for ever (measured: 1.99 GB for 40,000 jobs written without a pause). So the
 * helper makes passes while the last one left many frames behind, and once an answer finds the
 * WAL past `restartAtFrames`, the connection copies what is left itself (a passive checkpoint on
 * the event loop of the last few ms' commits, 3-9 ms measured, where SQLite's own copied 8,000
 * pages), and its next write starts the WAL over.
 *
 * A helper that cannot start or that dies gives the connection its automatic checkpoint back; the
 * server says so in its log and goes on as before.
 */
export class WalCheckpointer {
  readonly #options: WalCheckpointerOptions;
  readonly #proc: ChildProcess;
  readonly #changes: StatementSync;
  /** The connection's own passive checkpoint (`#catchUp`). */
  readonly #checkpointHere: StatementSync;
  /** Replies still due, in the order asked (the helper answers one request at a time). */
  readonly #waiting: ((result: CheckpointResult | undefined) => void)[] = [];
  readonly #started: Promise<void>;
  readonly #exited: Promise<void>;
  readonly #restartAt: number;
  readonly #interval: number;
  #requests = 0;
  #catchUps = 0;
  /** Checkpoints failed in a row: the next is asked for later (`FAILING_INTERVAL_MAX_MS`). */
  #failures = 0;
  /** A catch-up found the connection inside a transaction: done at the next tick. */
  #catchUpDue = false;
  #timer: ClockTimer | undefined;
  #lastChanges: number;
  #inFlight: Promise<CheckpointResult | undefined> | undefined;
  #running = false;
  #closing = false;
  /** Its end was seen ('error' or 'close', whichever came first). */
  #gone = false;
  /** The last request failed: the next failures in a row are not logged again. */
  #failing = false;

  private constructor(options: WalCheckpointerOptions) {
    this.#options = options;
    this.#restartAt = options.restartAtFrames ?? WAL_CHECKPOINT_PAGES;
    this.#interval = options.intervalMs ?? CHECKPOINT_INTERVAL_MS;
    this.#changes = options.connection.prepare('select total_changes() as n');
    this.#checkpointHere = options.connection.prepare('pragma wal_checkpoint(passive)');
    this.#lastChanges = this.#readChanges();
    this.#proc = spawn(options.path, [options.database], {
      argv0: 'jobworker-checkpointer',
      env: {},
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#proc.stdin?.on('error', () => {}); // EPIPE once it died: 'exit' below tells
    // Lines read by hand, as the spawner's are: node:readline is not loaded by an idle server.
    onLines(this.#proc.stdout!, (line) => this.#reply(line));
    onLines(this.#proc.stderr!, (line) => options.log(line));
    this.#started = new Promise((resolve) => {
      this.#proc.once('spawn', () => {
        if (!this.#gone && !this.#closing) {
          this.#running = true;
          options.connection.exec(`pragma wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
          this.activity();
        }
        resolve();
      });
      this.#proc.once('error', () => resolve());
    });
    this.#exited = new Promise((resolve) => {
      this.#proc.once('error', (err) => {
        this.#fallBack(`could not start the checkpoint helper: ${err.message}`);
        resolve();
      });
      this.#proc.once('close', (code, signal) => {
        this.#fallBack(`the checkpoint helper ended (${signal ?? `code ${code}`})`);
        resolve();
      });
    });
    this.#hold(false);
  }

  /**
   * Starts the helper for `database` (open on `connection`). Once this resolves the helper runs
   * and the connection's automatic checkpoint is only a backstop, or it could not start (logged) and the
   * connection checkpoints as before.
   */
  static async start(options: WalCheckpointerOptions): Promise<WalCheckpointer> {
    const checkpointer = new WalCheckpointer(options);
    await checkpointer.#started;
    return checkpointer;
  }

  /** How many checkpoints the helper was asked for. */
  get requests(): number {
    return this.#requests;
  }

  /** How many times the connection caught up itself (copied every frame left), so that its next write started the WAL over. */
  get catchUps(): number {
    return this.#catchUps;
  }

  /** Whether the helper runs (and the connection's automatic checkpoint is only a backstop). */
  get running(): boolean {
    return this.#running;
  }

  /** The helper's pid while it runs. */
  get pid(): number | undefined {
    return this.#running ? this.#proc.pid : undefined;
  }

  /**
   * A passive checkpoint by the helper: what it did, or undefined when the helper is gone or the
   * checkpoint failed (logged). A request made while one is under way shares it.
   */
  checkpoint(): Promise<CheckpointResult | undefined> {
    if (!this.#running) return Promise.resolve(undefined);
    this.#inFlight ??= new Promise<CheckpointResult | undefined>((resolve) => {
      this.#waiting.push(resolve);
      this.#requests++;
      this.#hold(true);
      this.#proc.stdin?.write('checkpoint\n');
    }).finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /**
   * Ends the helper. Call it once the server's connection is closed: the helper is then the
   * last connection, whose close copies what is left of the WAL and removes it.
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#timer?.clear();
    // Held until it has gone: a caller awaiting this with nothing else alive must see it end.
    if (!this.#gone) this.#hold(true);
    this.#proc.stdin?.end();
    await this.#exited;
  }

  /**
   * The store was used (`NodeSqliteDatabase.onUse`): the ticks go on, if they had stopped. Cheap
   * enough for every statement: one look at a field while they run.
   */
  activity(): void {
    if (this.#timer === undefined && this.#inFlight === undefined && this.#running) this.#schedule();
  }

  /**
   * The next tick, `ms` from now: it asks for a checkpoint if the connection changed anything,
   * and once that is answered schedules the one after it, sooner while the WAL grows fast (a pass
   * over many frames holds the disk longer, and the server's writes wait behind its fsyncs). A
   * tick that finds nothing changed schedules none: an idle server's main thread is not woken,
   * and the next statement starts the ticks again (`activity`).
   */
  #schedule(ms = this.#interval): void {
    this.#timer = this.#options.clock.setTimer(() => {
      this.#timer = undefined;
      // The store closes its connection before it closes this: nothing to read then.
      if (!this.#running || !this.#options.connection.isOpen) return;
      if (this.#catchUpDue) this.#catchUp();
      const changes = this.#readChanges();
      if (changes === this.#lastChanges) {
        if (this.#catchUpDue) this.#schedule();
        return;
      }
      void this.checkpoint().then((result) => {
        // Counted as done only once done: a checkpoint that failed is asked for again, later
        // each time it fails again (a full disk, a lock held elsewhere), so that an idle server
        // whose helper keeps failing is not woken four times a second for ever.
        if (result) this.#lastChanges = changes;
        this.#failures = result ? 0 : this.#failures + 1;
        if (this.#running && this.#timer === undefined) {
          const busy = result !== undefined && result.log >= this.#restartAt / 4;
          const backoff = Math.min(FAILING_INTERVAL_MAX_MS, this.#interval * 2 ** this.#failures);
          this.#schedule(busy ? Math.min(BUSY_INTERVAL_MS, this.#interval) : backoff);
        }
      });
    }, ms);
  }

  #readChanges(): number {
    return Number((this.#changes.get() as { n: number | bigint }).n);
  }

  #reply(line: string): void {
    const resolve = this.#waiting.shift();
    // Once closing, held until the helper has gone (`close`), whatever its last reply was.
    if (this.#waiting.length === 0 && !this.#closing) this.#hold(false);
    const ok = /^ok (-?\d+) (-?\d+)$/.exec(line);
    if (ok) {
      this.#failing = false;
      const result = { log: Number(ok[1]), checkpointed: Number(ok[2]) };
      if (result.log >= this.#restartAt) this.#catchUp();
      resolve?.(result);
      return;
    }
    // SQLITE_BUSY (5): another connection held a lock the checkpoint needs for a moment (the
    // server's, resetting the WAL); it is asked again at the next tick, and says nothing.
    if (!this.#failing && !line.startsWith('err 5 ')) {
      this.#options.log(`a WAL checkpoint failed (tried again at the next one): ${line}`);
      this.#failing = true;
    }
    resolve?.(undefined);
  }

  /**
   * The connection's own passive checkpoint of what the helper left (the commits made while it
   * copied), so that its next write starts the WAL over. Not inside a transaction (SQLite refuses
   * a checkpoint there): then at the next tick.
   */
  #catchUp(): void {
    const { connection } = this.#options;
    this.#catchUpDue = false;
    if (this.#closing || !connection.isOpen) return;
    if (connection.isTransaction) {
      this.#catchUpDue = true;
      return;
    }
    try {
      const done = this.#checkpointHere.get() as unknown as CheckpointRow;
      // Counted only when it copied the rest: a checkpoint that found its lock taken does nothing.
      if (done.busy === 0 && done.checkpointed === done.log) this.#catchUps++;
    } catch (err) {
      // Tried again after the next checkpoint; the backstop bounds the WAL meanwhile.
      if (!this.#failing)
        this.#options.log(`a WAL checkpoint failed (tried again at the next one): ${String(err)}`);
      this.#failing = true;
    }
  }

  /**
   * Only a request waiting for its reply keeps the process alive (`true`): an idle server, or a
   * test done with its store, exits as if the helper were not there.
   */
  #hold(waiting: boolean): void {
    const handles = [this.#proc, this.#proc.stdin, this.#proc.stdout, this.#proc.stderr] as ({
      ref?: () => void;
      unref?: () => void;
    } | null)[];
    for (const handle of handles) (waiting ? handle?.ref : handle?.unref)?.call(handle);
  }

  /** The helper is gone: the connection checkpoints for itself again. */
  #fallBack(why: string): void {
    if (this.#gone) return;
    this.#gone = true;
    const wasRunning = this.#running;
    this.#running = false;
    this.#timer?.clear();
    for (const resolve of this.#waiting.splice(0)) resolve(undefined);
    if (this.#closing) return;
    if (wasRunning && this.#options.connection.isOpen) {
      this.#options.connection.exec(`pragma wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    }
    this.#options.log(`${why}; SQLite checkpoints run on the server's event loop again`);
  }
}

/** Calls `each` with every whole line `stream` carries (without its newline). */
function onLines(stream: Readable, each: (line: string) => void): void {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
    let newline = text.indexOf('\n');
    while (newline >= 0) {
      each(text.slice(0, newline));
      text = text.slice(newline + 1);
      newline = text.indexOf('\n');
    }
  });
}
