import type { Clock } from '../core/clock.ts';
import { NotFoundError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';
import { untilWritten } from '../engine/until-written.ts';
import type { JobStore } from '../store/job-store.ts';
import type { NodeRecord, NodeStore } from '../store/node-store.ts';
import type { ClusterRouting, NodePeer } from './cluster-routing.ts';
import type { LostNodeOutcome } from './lost-node-jobs.ts';
import type { NodeCredentials } from './node-credentials.ts';
import { type MembershipEngine, NodeMembership } from './node-membership.ts';
import { RemoteNode } from './remote-node.ts';

/** How far back a starting node looks for its jobs decided `lost` by others (the default retention). */
const LEFTOVER_WINDOW_MS = 30 * 24 * 3600 * 1000;

/** A wake-up from the shared store (`PgJobStore.watch`). */
export interface StoreWakeUp {
  readonly channel: 'work' | 'ended' | 'accounts' | 'due';
  readonly payload: string;
}

/** What a node of a cluster needs of its store: the jobs, the nodes, and wake-ups. */
export interface SharedStore extends JobStore {
  readonly nodes: NodeStore;
  watch(listener: (event: StoreWakeUp) => void): Promise<() => Promise<void>>;
  /**
   * Holds node id `id` until the store closes (`PgNodeLock`): rejects, with a ValidationError on
   * `nodeId`, when another running server holds it and does not let go within `waitMs`.
   */
  holdNodeId(
    id: string,
    options: { readonly waitMs?: number; readonly log: (level: 'warn' | 'error', message: string) => void },
  ): Promise<() => Promise<void>>;
}

/** What the node drives once its engine and user directory exist. */
export interface ClusterParts {
  readonly engine: MembershipEngine & {
    dispatch(): Promise<void>;
    /** A job now waits until `at` (another node delayed it), or undefined: ask the store again. */
    delayedElsewhere(at?: Date): void;
    on(event: 'node:drain', listener: (draining: boolean) => void): unknown;
  };
  /** Reloads the users and tokens (another node changed them). */
  readonly reloadAccounts: () => Promise<void>;
}

export interface ClusterNodeOptions {
  readonly store: SharedStore;
  readonly self: { readonly id: string; readonly url: string };
  /** Signs forwarded calls and checks those forwarded here; absent: this node does neither. */
  readonly credentials?: NodeCredentials;
  /** PEM CA certificates that verify peers' HTTPS certificates (`serve --cluster-ca`); absent: the system's. */
  readonly peerCa?: readonly string[];
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly heartbeatMs?: number;
  /** How long a start waits for its id to be let go by another session; the store's default unless told (tests). */
  readonly nodeIdWaitMs?: number;
  readonly log: {
    info(fields: object, message: string): void;
    warn(fields: object, message: string): void;
    error(fields: object, message: string): void;
  };
}

/**
 * This server as a node of a cluster (docs/cluster.md): its membership (join, heartbeat, sweep of
 * lost nodes), its routing to peers (for the service's forwarding), and the store's wake-ups
 * wired to what they wake: new work to the dispatcher, users' and tokens' changes to the directory.
 * The composition root makes one when the store is shared; a server on SQLite has none.
 */
export class ClusterNode {
  readonly #options: ClusterNodeOptions;
  readonly #peers = new Map<string, RemoteNode>();
  /** This node: its URL is known for sure only once it listens (`advertise`). */
  #self: { readonly id: string; readonly url: string };
  #membership: NodeMembership | undefined;
  #unwatch: (() => Promise<void>) | undefined;
  #reloading: Promise<void> | undefined;
  /** Waits for the end of jobs, by id: what `ended` notifications resolve. */
  readonly #endWaiters = new Map<string, Set<() => void>>();
  #reloadAgain = false;
  /** Aborted by `close`: ends a reload's retries. */
  readonly #closing = new AbortController();
  /** Set by `join`: the node's record before it joined, when it had one. */
  previous: NodeRecord | undefined;

  constructor(options: ClusterNodeOptions) {
    this.#options = options;
    this.#self = options.self;
  }

  get credentials(): NodeCredentials | undefined {
    return this.#options.credentials;
  }

  get id(): string {
    return this.#options.self.id;
  }

  /** How the service reaches peers, and hears that a job ended on one. */
  get routing(): ClusterRouting {
    return {
      node: this.#options.self.id,
      peer: (id) => this.#peer(id),
      ended: (id, signal) => this.#whenEnded(id, signal),
    };
  }

  /** Resolves when the store notifies the end of job `id` (after `start`); see `ClusterRouting.ended`. */
  #whenEnded(id: string, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return;
      const waiting = this.#endWaiters.get(id) ?? new Set<() => void>();
      this.#endWaiters.set(id, waiting);
      const waiter = () => {
        signal.removeEventListener('abort', forget);
        resolve();
      };
      const forget = () => {
        waiting.delete(waiter);
        if (waiting.size === 0) this.#endWaiters.delete(id);
      };
      waiting.add(waiter);
      signal.addEventListener('abort', forget, { once: true });
    });
  }

  /**
   * Records this node as active (before its engine claims anything). Returns the jobs of this node
   * that were decided without it while it was lost, whose processes may have outlived it
   * (`JobEngine.endLeftovers` ends them).
   */
  async join(): Promise<Job[]> {
    const { store, clock, timeoutMs, heartbeatMs, log } = this.#options;
    const self = this.#self;
    // Before anything of the node's row changes: a second server with this id is refused here.
    // Held until the store closes, after the engine: the id is this node's while it records.
    const releaseId = await store.holdNodeId(self.id, {
      ...(this.#options.nodeIdWaitMs === undefined ? {} : { waitMs: this.#options.nodeIdWaitMs }),
      log: (level, message) => log[level]({}, message),
    });
    let joined: Awaited<ReturnType<typeof NodeMembership.join>>;
    try {
      joined = await NodeMembership.join({
        nodes: store.nodes,
        jobs: store,
        self,
        clock,
        timeoutMs,
        ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
        onLostNode: (node: NodeRecord, outcome: LostNodeOutcome) =>
          log.warn(
            {
              node: node.id,
              url: node.url,
              lost: outcome.lost.length,
              released: outcome.released.length,
              cancelled: outcome.cancelled.length,
            },
            `node ${node.id} declared lost: ${node.reason ?? ''}`,
          ),
        onRejoined: (relinquished: Job[]) =>
          log.warn(
            { relinquished: relinquished.map((j) => j.id) },
            'this node had been declared lost; it gave up the jobs decided without it and joined again',
          ),
        onError: (err: Error) =>
          log.error({ err }, 'cluster heartbeat failed; trying again at the next beat'),
      });
    } catch (err) {
      await releaseId();
      throw err;
    }
    this.#membership = joined.membership;
    this.previous = joined.previous;
    // At every start, not only after a loss seen now: a start that failed after it rejoined would
    // otherwise hide the loss from the next. Lost jobs are few (a partial index finds them).
    return store.nodes.jobsDecidedWhileLost(self.id, new Date(clock.now().getTime() - LEFTOVER_WINDOW_MS));
  }

  /** Starts beating, and listening to the store. */
  async start(parts: ClusterParts): Promise<void> {
    const membership = this.#membership;
    if (!membership) throw new Error('ClusterNode.start before join');
    this.#unwatch = await this.#options.store.watch((event) => {
      if (event.channel === 'ended') {
        const waiting = this.#endWaiters.get(event.payload);
        this.#endWaiters.delete(event.payload);
        for (const waiter of waiting ?? []) waiter();
      } else if (event.channel === 'due') {
        parts.engine.delayedElsewhere(new Date(Number(event.payload)));
      } else if (event.channel === 'work') {
        // The empty payload follows a reconnection: what was sent meanwhile is lost, delays included.
        if (event.payload === '') parts.engine.delayedElsewhere();
        parts.engine.dispatch().catch((err: unknown) => this.#options.log.error({ err }, 'dispatch failed'));
      } else if (event.channel === 'accounts') {
        this.#reloadAccounts(parts.reloadAccounts);
      }
    });
    parts.engine.on('node:drain', (draining) => {
      membership
        .setDraining(draining)
        .catch((err: unknown) =>
          this.#options.log.error({ err }, 'could not record the drain in the cluster'),
        );
    });
    // What other nodes changed between this node's first read of the users and the LISTEN above
    // (nodes starting together issue their admin tokens then) is read once more now.
    this.#reloadAccounts(parts.reloadAccounts);
    await membership.start(parts.engine);
  }

  /**
   * One reload at a time, and one more after it when a change came meanwhile: a reload that began
   * before a revoke committed can never finish after the one that saw it and put the token back.
   * One that fails (the store busy or away a moment) is tried again on the clock, with a backoff,
   * until one succeeds: a revocation it carried must not wait for some unrelated later change.
   */
  #reloadAccounts(reload: () => Promise<void>): void {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    const { clock, log } = this.#options;
    this.#reloading = (async () => {
      do {
        this.#reloadAgain = false;
        await untilWritten(reload, {
          clock,
          signal: this.#closing.signal,
          onFirstFailure: (err) =>
            log.error({ err }, 'could not reload users and tokens changed by another node; trying again'),
        }).catch((err: unknown) =>
          log.error({ err }, 'could not reload users and tokens changed by another node'),
        );
      } while (this.#reloadAgain && !this.#closing.signal.aborted);
      this.#reloading = undefined;
    })();
  }

  /** Records the URL this node listens at, once known (a port picked at listen). */
  async advertise(url: string): Promise<void> {
    if (url === this.#self.url) return;
    this.#self = { id: this.#self.id, url };
    await this.#membership?.advertise(this.#self);
  }

  /**
   * Stops beating and listening. With `leave` (a drained node that runs nothing), records that it
   * left on purpose; otherwise it stays active and is declared lost unless it comes back in time.
   */
  async close(options: { leave?: string } = {}): Promise<boolean> {
    this.#closing.abort();
    await this.#unwatch?.();
    await this.#reloading;
    return (await this.#membership?.close(options)) ?? false;
  }

  async #peer(id: string): Promise<NodePeer | undefined> {
    const record = await this.#options.store.nodes.getNode(id);
    if (record === undefined || record.state === 'left') return undefined;
    const credentials = this.#options.credentials;
    if (credentials === undefined) return undefined;
    const cached = this.#peers.get(id);
    if (cached && cached.url === record.url) return cached;
    const peer = new RemoteNode({
      node: id,
      url: record.url,
      ...(this.#options.peerCa ? { ca: this.#options.peerCa } : {}),
      credentials,
      records: async (jobId) => {
        const job = await this.#options.store.getJob(jobId);
        if (!job) throw new NotFoundError(jobId);
        return job;
      },
      clock: this.#options.clock,
    });
    this.#peers.set(id, peer);
    return peer;
  }
}
