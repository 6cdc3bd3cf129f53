import type { Clock, ClockTimer } from '../core/clock.ts';
import type { Job } from '../core/job.ts';
import type { JobStore } from '../store/job-store.ts';
import { mayHeal } from './until-written.ts';

export interface DispatcherDeps {
  readonly store: JobStore;
  readonly node: string;
  readonly clock: Clock;
  /**
   * Starts the jobs of a claimed batch together, one promise per job; none rejects (a job that
   * cannot start is recorded as failed).
   */
  readonly launchAll: (jobs: readonly Job[]) => Promise<void>[];
  /** Gives a claim back unlaunched (a drain or a shutdown came while claiming); see `Launcher.releaseClaim`. */
  readonly releaseClaim: (id: string) => Promise<void>;
  /** Most jobs claimed from one queue in one go, so one busy queue cannot starve the rest. */
  readonly batch: number;
  /** How many more jobs this node may start now (its `maxRunning` less what it runs). */
  readonly nodeFree: () => number;
  readonly onError: (err: Error) => void;
}

/** How soon a pass that failed is tried again. */
const RETRY_AFTER_FAILURE_MS = 1000;

/**
 * Decides which queued jobs start, and starts them. A pass promotes delayed jobs whose time came,
 * (asking the store only when one may be due), then, queue by queue, claims as many ready jobs as the queue has free slots (highest priority,
 * then oldest, through one index range: O(log n) in the waiting jobs) and launches them. Passes
 * never overlap: a kick during a pass asks for one more after it. Between passes the dispatcher
 * sleeps on one timer, set to the earliest `runAt` of a delayed job.
 */
export class Dispatcher {
  readonly #deps: DispatcherDeps;
  #running: Promise<void> | undefined;
  #again = false;
  #waiters: (() => void)[] = [];
  #timer: ClockTimer | undefined;
  #stopped = false;
  #draining = false;
  /** Until `open`: kicks meanwhile wait for the first pass after it. */
  #held = true;
  /**
   * The earliest `runAt` of a delayed job (ms), null for none, undefined for not known: a pass
   * asks the store only when it is not known or has come, so passes cost no query for delays.
   */
  #nextDue: number | null | undefined;
  /** The earliest `noteDue` since the last pass began asking the store (see `noteDue`). */
  #notedDue: number | undefined;
  /**
   * Claims a drain or a shutdown sent back whose release failed (the store away a moment), by id.
   * Left as they are, they would stay claimed by this node, outside any launch, until a restart: each
   * holding its queue's slot, keeping the node from leaving, and a stop on it recorded and never
   * carried out. Every pass gives them back first, and one that cannot is tried again soon.
   */
  readonly #unreleased = new Set<string>();
  /** Set by `retrySoon`: the pass it asked for. */
  #retryTimer: ClockTimer | undefined;

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
  }

  /**
   * Lets passes run, and asks for the first. None runs before: the engine first recovers what the
   * last server left (adopted jobs, the claims it was starting), and a pass before that would claim
   * jobs that recovery then takes for the last server's leftovers, and give back or fail while
   * they start.
   */
  open(): Promise<void> {
    this.#held = false;
    return this.kick();
  }

  /** True while draining: no job starts until `undrain`. */
  get draining(): boolean {
    return this.#draining;
  }

  drain(): void {
    this.#draining = true;
  }

  undrain(): void {
    this.#draining = false;
    void this.kick();
  }

  /** A delayed job now waits until `at`: the timer must ring by then. */
  noteDue(at: Date): void {
    // Kept for the pass that may be asking the store right now: its answer may predate the write
    // that `at` tells of (another node's, heard of by notification), and must not hide it.
    this.#notedDue = Math.min(this.#notedDue ?? Number.POSITIVE_INFINITY, at.getTime());
    if (this.#nextDue === undefined) return;
    if (this.#nextDue === null || at.getTime() < this.#nextDue) {
      this.#nextDue = at.getTime();
      this.#armTimer();
    }
  }

  /** Delayed jobs changed in ways not told one by one (retries, released dependents): ask again. */
  forgetDue(): void {
    this.#nextDue = undefined;
  }

  /**
   * Asks for a pass a moment from now (`RETRY_AFTER_FAILURE_MS`), not at once: a job went back to
   * its queue unstarted as the store could not be read, and a pass at once would claim it again
   * while the store is still away.
   */
  retrySoon(): void {
    if (this.#stopped || this.#retryTimer) return;
    this.#retryTimer = this.#deps.clock.setTimer(() => {
      this.#retryTimer = undefined;
      void this.kick();
    }, RETRY_AFTER_FAILURE_MS);
  }

  /** Asks for a pass; resolves once a pass that began after this call has ended. */
  kick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.#waiters.push(resolve));
    if (this.#held) return done;
    if (this.#running) this.#again = true;
    else this.#running = this.#loop();
    return done;
  }

  /** Stops dispatching; resolves once the pass under way (and the launches it began) ended. */
  async close(): Promise<void> {
    this.#stopped = true;
    this.#timer?.clear();
    this.#retryTimer?.clear();
    for (const resolve of this.#waiters.splice(0)) resolve();
    await this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      const waiters = this.#waiters.splice(0);
      try {
        if (await this.#pass()) this.#again = true;
      } catch (err) {
        this.#deps.onError(err as Error);
        // A pass that failed (a busy database, say) is tried again soon, not at the next event.
        this.#nextDue = undefined;
        this.#timer?.clear();
        if (!this.#stopped) {
          this.#timer = this.#deps.clock.setTimer(() => void this.kick(), RETRY_AFTER_FAILURE_MS);
        }
      }
      for (const resolve of waiters) resolve();
    } while (this.#again && !this.#stopped);
    this.#running = undefined;
    // Kicks that came while the last pass ended still get a pass of their own.
    if (this.#waiters.length > 0 && !this.#stopped) this.#running = this.#loop();
  }

  /** One pass; true when a queue had more ready jobs than one batch, so another pass is due. */
  async #pass(): Promise<boolean> {
    const { store, clock, node, batch } = this.#deps;
    // Draining or not: a claim left unreleased holds its slot whatever this node does next.
    if (this.#unreleased.size > 0) await this.#giveBack([...this.#unreleased]);
    const due = this.#nextDue;
    if (due === undefined || (due !== null && due <= clock.now().getTime())) {
      this.#notedDue = undefined;
      await store.promoteDue(clock.now());
      const stored = (await store.nextRunAt())?.getTime() ?? null;
      const noted = this.#notedDue as number | undefined;
      this.#nextDue = noted === undefined ? stored : stored === null ? noted : Math.min(stored, noted);
      this.#armTimer();
    }
    if (this.#draining || this.#stopped) return false;
    let more = false;
    // Launched together (batch by batch) and awaited at the end of the pass, so a pass still ends
    // with its launches (`kick` and `close` wait for them) while no launch waits for another.
    const launched: Promise<void>[] = [];
    try {
      for (const queue of await store.listReadyQueues()) {
        if (queue.paused) continue;
        if (this.#draining || this.#stopped) break;
        const nodeFree = this.#deps.nodeFree();
        if (nodeFree <= 0) break; // a job that ends kicks a new pass
        // A fast path only: `claimReady` enforces the queue's concurrency (and pause) itself, in
        // the claim's transaction, so other processes or nodes claiming at once cannot exceed it.
        const free =
          queue.concurrency === null ? batch : queue.concurrency - (await store.countActive(queue.name));
        if (free <= 0) continue;
        const want = Math.min(free, batch, nodeFree);
        const claimed = await store.claimReady(queue.name, node, want);
        if (claimed.length === batch) more = true;
        if (this.#draining || this.#stopped) {
          // A drain or a shutdown came while claiming: what was claimed goes back unlaunched.
          await this.#giveBack(claimed.map((job) => job.id));
          return false;
        }
        // In claim order (priority, then arrival): the launcher records their starts in that order.
        launched.push(...this.#deps.launchAll(claimed));
      }
    } finally {
      await Promise.all(launched);
    }
    return more;
  }

  /**
   * Gives these claims back, every one even when some fail: one that fails on what may heal is kept
   * in `#unreleased` for the next pass, and the first failure fails this pass (it is reported, and
   * the next pass comes soon). One the store refuses for good (the job decided elsewhere) is not
   * this node's any more.
   */
  async #giveBack(ids: readonly string[]): Promise<void> {
    let failure: { err: unknown } | undefined;
    for (const id of ids) {
      try {
        await this.#deps.releaseClaim(id);
        this.#unreleased.delete(id);
      } catch (err) {
        if (mayHeal(err)) this.#unreleased.add(id);
        else this.#unreleased.delete(id);
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }

  #armTimer(): void {
    this.#timer?.clear();
    this.#timer = undefined;
    const next = this.#nextDue;
    if (next === null || next === undefined || this.#stopped) return;
    this.#timer = this.#deps.clock.setTimer(() => {
      // The timer rang: whatever was due is due now; ask the store in the next pass.
      this.#nextDue = undefined;
      void this.kick();
    }, next - this.#deps.clock.now().getTime());
  }
}
