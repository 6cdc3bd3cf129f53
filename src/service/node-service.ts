import { type Principal, seesEveryJob } from '../auth/principal.ts';
import type { Clock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';
import type { NodeState, NodeStore } from '../store/node-store.ts';

/** A node as `GET /v1/nodes` and `jobworker nodes` show it. */
export interface NodeView {
  readonly id: string;
  /** Where the other nodes reach it. */
  readonly url: string;
  readonly state: NodeState;
  readonly joinedAt: Date;
  readonly heartbeatAt: Date;
  /** Why it is `lost` or `left`; null otherwise. */
  readonly reason: string | null;
  /** Its jobs running or paused now, as the store records them. */
  readonly running: number;
  /** The node that answered. */
  readonly self: boolean;
}

/**
 * The nodes of the cluster (docs/cluster.md), for admins and viewers: a server on SQLite lists
 * itself alone. `source` reads them (the composition root knows from where).
 */
export class NodeService {
  readonly #source: () => Promise<NodeView[]>;

  constructor(source: () => Promise<NodeView[]>) {
    this.#source = source;
  }

  async list(who: Principal): Promise<NodeView[]> {
    if (!seesEveryJob(who.role)) {
      throw new JobworkerError('FORBIDDEN', 'Only an admin or a viewer may list the nodes of the cluster');
    }
    return this.#source();
  }

  /** A server on its own (SQLite): itself, as its engine knows itself. */
  static alone(
    engine: LocalNode,
    options: { readonly url: () => string; readonly clock: Clock },
  ): NodeService {
    const joinedAt = options.clock.now();
    return new NodeService(async () => {
      const { draining, running } = engine.drainState;
      return [
        {
          id: engine.node,
          url: options.url(),
          state: draining ? 'draining' : 'active',
          joinedAt,
          heartbeatAt: options.clock.now(),
          reason: null,
          running,
          self: true,
        },
      ];
    });
  }

  /** A node of a cluster: every node of the shared store. */
  static cluster(nodes: NodeStore, self: string): NodeService {
    return new NodeService(async () => {
      const [records, running] = await Promise.all([nodes.listNodes(), nodes.runningPerNode()]);
      return records.map((r) => ({ ...r, running: running.get(r.id) ?? 0, self: r.id === self }));
    });
  }
}

/** What `NodeService.alone` reads of the engine. */
export interface LocalNode {
  readonly node: string;
  readonly drainState: { readonly draining: boolean; readonly running: number };
}
