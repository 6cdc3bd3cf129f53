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
 * of an SQLite store is alone. Every method is one transaction (a sweep's two per node), and every
 * change of a node's row holds its lock: a node's own join waits while another node decides its
 * jobs, and its beat or drain finds it lost.
 */
export interface NodeStore {
  /**
   * Records that node `id` runs now at `url`: a new row, or the node's row made `active` again
   * (after a restart, a drain or a loss). `previous` is its record before, read under the row's
   * lock; undefined for a new node. Its times are the store's clock, as for `heartbeat`.
   */
  join(node: {
    readonly id: string;
    readonly url: string;
  }): Promise<{ record: NodeRecord; previous?: NodeRecord }>;
  /**
   * Records a heartbeat of an `active` or `draining` node and returns its record; a node found
   * `lost` (or `left`, or gone) is not touched, and its record (or undefined) tells it so. The time
   * recorded is the store's (the database server's clock), which `declareLost` judges silence by:
   * the nodes' own clocks need not agree for it.
   */
  heartbeat(id: string): Promise<NodeRecord | undefined>;
  /**
   * Moves an `active` or `draining` node to `draining` or back to `active`; a `lost` or `left`
   * node is left as it is (it learns at its next beat). Returns the record as it is after.
   */
  setDraining(id: string, draining: boolean): Promise<NodeRecord | undefined>;
  /** Changes the URL of an `active` or `draining` node (known once it listens). */
  setUrl(id: string, url: string): Promise<NodeRecord | undefined>;
  /**
   * Records that an `active` or `draining` node left on purpose, only if the store holds no job of
   * it running, paused or being started; true when it was recorded.
   */
  leave(id: string, reason: string): Promise<boolean>;
  getNode(id: string): Promise<NodeRecord | undefined>;
  /** Every node ever joined, by id. */
  listNodes(): Promise<NodeRecord[]>;
  /**
   * Declares `lost`, with `reason(node)`, each `active` or `draining` node whose last heartbeat is
   * more than `silentForMs` ago on the store's clock, and each `lost` one that still holds jobs (claimed after it was swept,
   * or left over by a sweep cut short), and calls `decide(node)` for it while holding the node's
   * row locked: its own join waits until its jobs are decided. The declaration is committed before
   * `decide` begins, so that it stands should the decisions be cut short. A `decide` that throws
   * keeps the declaration (the node learns it was lost; a later sweep decides what is left) and
   * its error is thrown once every silent node was visited. Nodes being declared by another
   * sweeper are skipped. Returns the nodes declared.
   */
  declareLost(
    silentForMs: number,
    reason: (node: NodeRecord) => string,
    decide: (node: NodeRecord) => Promise<void>,
  ): Promise<NodeRecord[]>;
  /**
   * Ends the database sessions of the server that last joined as node `id` (a node declared lost):
   * one frozen or cut off in the middle of a transaction holds that transaction's row locks until
   * its session ends, and deciding its jobs would wait on them. Not those of a server starting
   * again under the id (not joined yet), nor its hold on its id, which a second server must still
   * not take.
   * Returns how many were ended; a session this store may not end is left (the wait is then bounded
   * by the server's own timeouts: docs/cluster.md).
   */
  endSessions(id: string): Promise<number>;
  /**
   * The jobs of node `id` recorded `lost` since `since`: what other nodes decided, whose processes
   * a node must end when it starts again (it may have been lost while it was down).
   */
  jobsDecidedWhileLost(id: string, since: Date): Promise<Job[]>;
  /** Jobs running or paused, per node (nodes running none are left out). */
  runningPerNode(): Promise<Map<string, number>>;
}
