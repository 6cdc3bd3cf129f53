import type { Clock, ClockTimer } from '../core/clock.ts';
import type { Job } from '../core/job.ts';
import type { JobStore } from '../store/job-store.ts';
import type { NodeRecord, NodeState, NodeStore } from '../store/node-store.ts';
import { decideLostNodeJobs, type LostNodeOutcome } from './lost-node-jobs.ts';

/** What membership needs of this node's engine. */
export interface MembershipEngine {
  /** Gives up the jobs another node decided while this one was cut off (`JobEngine.relinquishDecided`). */
  relinquishDecided(): Promise<Job[]>;
  readonly drainState: { readonly draining: boolean; readonly running: number };
}

export interface NodeMembershipOptions {
  readonly nodes: NodeStore;
  readonly jobs: JobStore;
  /** This node. */
  readonly self: { readonly id: string; readonly url: string };
  readonly clock: Clock;
  /** A node silent this long is declared lost (`serve --node-timeout`). */
  readonly timeoutMs: number;
  /** How often this node beats and sweeps; default a third of the timeout, at most 5 s. */
  readonly heartbeatMs?: number;
  /** Hears of what a sweep decided (for logs and the engine's event stream). */
  readonly onLostNode?: (node: NodeRecord, outcome: LostNodeOutcome) => void;
  /** This node found itself declared lost, gave up these jobs and joined again. */
  readonly onRejoined?: (relinquished: Job[]) => void;
  /** A beat or a sweep failed (the store unreachable, say); the next beat tries again. */
  readonly onError?: (err: Error) => void;
}

/** The heartbeat interval for a node timeout: a third of it (two missed beats are tolerated), at most 5 s. */
export function heartbeatIntervalMs(timeoutMs: number): number {
  return Math.max(200, Math.min(5000, Math.floor(timeoutMs / 3)));
}

/**
 * This node's membership of its cluster (docs/cluster.md). It joins, then beats every
 * `heartbeatMs` through the injected Clock, from the moment it joined (its engine is attached
 * later, by `start`). After each beat it sweeps, in the background so that a long decision never
 * delays its next beat: every node silent for longer than the timeout is declared lost and its
 * jobs decided here (one sweeper per node, under the node's row lock). It sweeps only once its
 * own beats have succeeded for a whole timeout: after an outage of the store, every node gets a
 * full timeout to beat again before anyone is declared lost. A node that finds itself declared
 * lost (it was cut off, or frozen) gives up the jobs decided without it, kills their processes,
 * and joins again.
 */
export class NodeMembership {
  #options: NodeMembershipOptions;
  readonly #heartbeatMs: number;
  #timer: ClockTimer | undefined;
  #beating: Promise<void> | undefined;
  #sweeping: Promise<void> | undefined;
  /** Since when every beat succeeded (undefined after a failure): sweeps wait for a whole timeout of it. */
  #healthySince: number | undefined;
  #closed = false;
  /** Set by `start`: the engine exists only after the node joined. */
  #engine: MembershipEngine | undefined;
  /**
   * Found lost: the jobs decided without this node are still to be given up, by the engine once it
   * is attached, and again at each beat until that succeeds (a failure must not leave them running
   * beside their retries elsewhere once this node is active again).
   */
  #relinquishPending = false;
  /**
   * A node was declared lost: dependents may wait on ends that nobody settled, of jobs its sweep
   * decided (should its decisions fail part way, the node, holding nothing more, is not swept
   * again) or that the node recorded just before it died. The sweep settles all such dependents
   * (`JobStore.settleAll`), and every later beat does until that succeeds.
   */
  #settlePending = false;

  private constructor(options: NodeMembershipOptions) {
    this.#options = options;
    this.#heartbeatMs = options.heartbeatMs ?? heartbeatIntervalMs(options.timeoutMs);
    this.#healthySince = options.clock.now().getTime();
  }

  /**
   * Joins the cluster (before the engine starts claiming) and starts beating. `previous` is the
   * node's record before, read under its row's lock: `lost` means its jobs were decided while it
   * was away.
   */
  static async join(
    options: NodeMembershipOptions,
  ): Promise<{ membership: NodeMembership; previous?: NodeRecord }> {
    const { previous } = await options.nodes.join(options.self);
    const membership = new NodeMembership(options);
    membership.#arm();
    return { membership, ...(previous ? { previous } : {}) };
  }

  /** This node's URL changed (known once it listens): recorded now, and said by later rejoins. */
  async advertise(self: { readonly id: string; readonly url: string }): Promise<void> {
    this.#options = { ...this.#options, self };
    await this.#options.nodes.setUrl(self.id, self.url);
  }

  get heartbeatMs(): number {
    return this.#heartbeatMs;
  }

  /** Attaches this node's engine: what a rejoin gives up jobs through. */
  async start(engine: MembershipEngine): Promise<void> {
    this.#engine = engine;
    if (this.#relinquishPending) await this.#relinquish(engine);
  }

  /** One beat, then one sweep (what the timer runs; tests call it too). Resolves once both ended. */
  async beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
    });
    await this.#beating;
    await this.#sweeping;
  }

  /** Records the node's drain (`draining`) or its end (`active`); a lost node is left as it is. */
  async setDraining(draining: boolean): Promise<void> {
    await this.#options.nodes.setDraining(this.#options.self.id, draining);
  }

  /**
   * Stops beating; with `leave`, records that the node left on purpose, when the store holds no job
   * of it (else it stays a member, to be declared lost unless it comes back within the timeout:
   * its jobs, left running for the next start to adopt, cannot be supervised meanwhile).
   * Resolves with whether it left.
   */
  async close(options: { leave?: string } = {}): Promise<boolean> {
    this.#closed = true;
    this.#timer?.clear();
    await this.#beating;
    await this.#sweeping;
    if (options.leave === undefined) return false;
    return this.#options.nodes.leave(this.#options.self.id, options.leave);
  }

  #arm(): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimer(() => {
      void this.#tick();
    }, this.#heartbeatMs);
  }

  async #tick(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
    });
    await this.#beating;
    this.#arm();
  }

  async #beat(): Promise<void> {
    const { nodes, self, clock, timeoutMs } = this.#options;
    try {
      const now = clock.now().getTime();
      const record = await nodes.heartbeat(self.id);
      if (record === undefined || (record.state !== 'active' && record.state !== 'draining')) {
        await this.#rejoin(record?.state);
      } else if (this.#relinquishPending && this.#engine) {
        await this.#relinquishAgain(this.#engine);
      }
      if (this.#settlePending) await this.#settleAgain();
      // A beat that hung (a store that froze rather than failed) is no sign of health: its peers'
      // beats hung too, and get a whole timeout from now before this node sweeps.
      const done = clock.now().getTime();
      if (done - now > this.#heartbeatMs) this.#healthySince = done;
      this.#healthySince ??= now;
      if (now - this.#healthySince >= timeoutMs && this.#sweeping === undefined) {
        this.#sweeping = this.#sweep().finally(() => {
          this.#sweeping = undefined;
        });
      }
    } catch (err) {
      this.#healthySince = undefined;
      this.#options.onError?.(err as Error);
    }
  }

  async #sweep(): Promise<void> {
    const { nodes, jobs, self, clock, timeoutMs } = this.#options;
    try {
      await nodes.declareLost(
        timeoutMs,
        (node) =>
          `no heartbeat since ${node.heartbeatAt.toISOString()} (node timeout ${timeoutMs / 1000} s), declared by ${self.id}`,
        async (node) => {
          if (node.id === self.id) return;
          // Its dependents too, whatever becomes of the decisions: a job the node recorded ended
          // just before it died, before it settled what waited for it, is no job of the node's
          // left to decide, and nothing else would settle its dependents until an engine restarts.
          this.#settlePending = true;
          // A node frozen or cut off in the middle of a transaction holds its rows until its
          // session ends: the decisions below would wait on them (and this sweep with them).
          await nodes.endSessions(node.id).catch((err: unknown) => this.#options.onError?.(err as Error));
          const outcome = await decideLostNodeJobs(jobs, node, clock.now());
          this.#options.onLostNode?.(node, outcome);
        },
      );
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
    if (this.#settlePending) await this.#settleAgain();
  }

  /** Found declared lost (or gone): give up what was decided without us, then join again. */
  async #rejoin(state: NodeState | undefined): Promise<void> {
    // Pending before the join: should what follows fail, the next beat (finding this node active)
    // still gives the jobs up.
    if (state === 'lost') this.#relinquishPending = true;
    // Joined first: the join waits for the sweep that declared us (it holds our row) to finish
    // deciding, so that every job it decided is final by the time we look.
    await this.#options.nodes.join(this.#options.self);
    if (this.#relinquishPending && this.#engine) await this.#relinquish(this.#engine);
    if (this.#engine?.drainState.draining) await this.setDraining(true);
  }

  /**
   * A give-up that failed before, tried again at a beat that reached the store: its failure is
   * told, and tried again at the next beat, but is no failure of the beat (the node's health, which
   * its sweeps wait for, is its beats'). A drain the failed try's rejoin did not record is now.
   */
  async #relinquishAgain(engine: MembershipEngine): Promise<void> {
    try {
      await this.#relinquish(engine);
      if (engine.drainState.draining) await this.setDraining(true);
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
  }

  /** `#settlePending`'s settling, at a beat; a failure is told and tried at the next, as above. */
  async #settleAgain(): Promise<void> {
    try {
      await this.#options.jobs.settleAll(this.#options.clock.now());
      this.#settlePending = false;
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
  }

  /** Gives up the jobs decided without this node; pending until that succeeded. */
  async #relinquish(engine: MembershipEngine): Promise<void> {
    const relinquished = await engine.relinquishDecided();
    this.#relinquishPending = false;
    this.#options.onRejoined?.(relinquished);
  }
}
