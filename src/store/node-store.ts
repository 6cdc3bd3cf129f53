import type { Job } from '../core/job.ts';

/**
 * What a node of a cluster is in: `active` claims and runs jobs; `draining` runs what it has and
 * claims nothing new; `left` drained and went away on purpose; `lost` went silent for longer than
 * the node timeout, and its jobs were decided by another node (docs/cluster.md).
 */
export type NodeState = 'active' | 'draining' | 'left' | 'lost';

export const NODE_STATES: readonly NodeState[] = ['active', 'draining', 'left', 'lost'];

/** One node of a cluster as the store knows it. */
export interface NodeRecord {
  /** `serve --node-id` (the host name by default): what `Job.node` names. */
  readonly id: string;
  /** The base URL the other nodes reach it at (`serve --advertise-url`). */
  readonly url: string;
  readonly state: NodeState;
  /** When it last joined (started, or came back after it was lost). */
  readonly joinedAt: Date;
  /** Its last heartbeat. */
  readonly heartbeatAt: Date;
  /** Why it is `lost` or `left`; null while it is active or draining. */
  readonly reason: string | null;
}

/**
 * The storage port of cluster membership: only a shared store (PostgreSQL) has one, since a node
 * of an SQLite store is alone. Every method is one transaction.
 */
export interface NodeStore {
  /**
   * Records that node `id` runs now at `url`: a new row, or the node's row made `active` again
   * (after a restart, a drain or a loss). `previous` is the state it had, undefined for a new node:
   * `lost` tells a node that came back that its jobs were decided without it.
   */
  join(
    node: { readonly id: string; readonly url: string },
    at: Date,
  ): Promise<{ record: NodeRecord; previous?: NodeState }>;
  /**
   * Records a heartbeat of an `active` or `draining` node and returns its record; a node found
   * `lost` (or `left`, or gone) is not touched, and its record (or undefined) tells it so.
   */
  heartbeat(id: string, at: Date): Promise<NodeRecord | undefined>;
  /** Moves a node to `draining`, back to `active`, or to `left` (with a reason). */
  setState(
    id: string,
    state: 'active' | 'draining' | 'left',
    reason?: string,
  ): Promise<NodeRecord | undefined>;
  getNode(id: string): Promise<NodeRecord | undefined>;
  /** Every node ever joined, by id. */
  listNodes(): Promise<NodeRecord[]>;
  /**
   * Declares `lost`, with `reason(node)`, every `active` or `draining` node whose last heartbeat is
   * before `silentSince`, and returns them. Nodes racing to declare the same node lose quietly: each
   * node is returned to exactly one caller, which then decides its jobs.
   */
  declareLost(silentSince: Date, reason: (node: NodeRecord) => string): Promise<NodeRecord[]>;
  /**
   * The jobs of node `id` recorded `lost` since `since`: what other nodes decided while it was
   * lost, whose processes a restarted node must end. A scan of that node's jobs ended since then.
   */
  jobsDecidedWhileLost(id: string, since: Date): Promise<Job[]>;
  /** Jobs running or paused, per node (nodes running none are left out). */
  runningPerNode(): Promise<Map<string, number>>;
}
