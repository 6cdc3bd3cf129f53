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
 * This node's membership of its cluster (docs/cluster.md): it joins, beats every `heartbeatMs`
 * (through the injected Clock), and at each beat also sweeps: every node silent for longer than
 * the timeout is declared lost and its jobs are decided here (one sweeper wins each node). A node
 * that finds itself declared lost (it was cut off, or frozen) gives up the jobs decided without it,
 * kills their processes, and joins again. A drain is recorded as the node's state; `leave`
 * records that it went on purpose.
 */
export class NodeMembership {
  #options: NodeMembershipOptions;
  readonly #heartbeatMs: number;
  #timer: ClockTimer | undefined;
  /** Set by `start`: the engine exists only after the node joined. */
  #engine: MembershipEngine | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;

  private constructor(options: NodeMembershipOptions) {
    this.#options = options;
    this.#heartbeatMs = options.heartbeatMs ?? heartbeatIntervalMs(options.timeoutMs);
  }

  /**
   * Joins the cluster (before the engine starts claiming). `previous` is the state the node had:
   * `lost` means its jobs were decided while it was away.
   */
  static async join(
    options: NodeMembershipOptions,
  ): Promise<{ membership: NodeMembership; previous?: NodeRecord }> {
    const previous = await options.nodes.getNode(options.self.id);
    await options.nodes.join(options.self, options.clock.now());
    return { membership: new NodeMembership(options), ...(previous ? { previous } : {}) };
  }

  /** This node's URL changed (known once it listens): rejoins say the new one. */
  advertise(self: { readonly id: string; readonly url: string }): void {
    this.#options = { ...this.#options, self };
  }

  get heartbeatMs(): number {
    return this.#heartbeatMs;
  }

  /** Starts beating and sweeping, for this node's engine. */
  start(engine: MembershipEngine): void {
    this.#engine = engine;
    this.#arm();
  }

  /** One beat and one sweep, now (what the timer runs; tests call it too). */
  beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  /** Records the node's drain (`draining`) or its end (`active`). */
  async setDraining(draining: boolean): Promise<void> {
    await this.#options.nodes.setState(this.#options.self.id, draining ? 'draining' : 'active');
  }

  /**
   * Stops beating; with `leave`, records that the node left on purpose (it runs nothing; its
   * peers stop expecting beats). Without it the node stays `active` and, unless it comes back
   * within the timeout, is declared lost: its jobs, left running for the next start to adopt,
   * cannot be supervised meanwhile.
   */
  async close(options: { leave?: string } = {}): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    await this.#beating;
    if (options.leave !== undefined) {
      await this.#options.nodes.setState(this.#options.self.id, 'left', options.leave);
    }
  }

  #arm(): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimer(() => {
      void this.beat().finally(() => this.#arm());
    }, this.#heartbeatMs);
  }

  async #beat(): Promise<void> {
    const { nodes, jobs, self, clock, timeoutMs } = this.#options;
    try {
      const now = clock.now();
      const record = await nodes.heartbeat(self.id, now);
      if (record === undefined || (record.state !== 'active' && record.state !== 'draining')) {
        await this.#rejoin(record?.state);
      }
      const lost = await nodes.declareLost(
        new Date(now.getTime() - timeoutMs),
        (node) =>
          `no heartbeat since ${node.heartbeatAt.toISOString()} (node timeout ${timeoutMs / 1000} s), declared by ${self.id}`,
      );
      for (const node of lost) {
        if (node.id === self.id) continue;
        const outcome = await decideLostNodeJobs(jobs, node, clock.now());
        this.#options.onLostNode?.(node, outcome);
      }
    } catch (err) {
      this.#options.onError?.(err as Error);
    }
  }

  /** Found declared lost (or gone): give up what was decided without us, then join again. */
  async #rejoin(state: NodeState | undefined): Promise<void> {
    const relinquished = state === 'lost' && this.#engine ? await this.#engine.relinquishDecided() : [];
    await this.#options.nodes.join(this.#options.self, this.#options.clock.now());
    if (this.#engine?.drainState.draining) await this.setDraining(true);
    this.#options.onRejoined?.(relinquished);
  }
}
