import type { Principal } from '../auth/principal.ts';
import { JobworkerError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';
import type { FollowEvent } from '../engine/job-engine.ts';
import type { OutputSelector } from '../output/output-types.ts';

/**
 * Glossary (docs/cluster.md):
 * - node: one jobworker server of a cluster; every job row names the node that runs it (`Job.node`).
 * - peer: another node, reached over its REST API at the URL it advertises.
 * - forwarding: this node answers a call about a job on a peer by making the same call there,
 *   signed with the cluster secret, and passing the answer back unchanged.
 */

/** A view of a job's output, as a peer streams it: output batches, then one `end` with the job. */
export type RemoteOutput = AsyncGenerator<FollowEvent> & {
  /** The view's end when the peer opened it: its length so far. */
  readonly end: number;
};

/** What a forwarded output read asks for: the service's `OutputRequest` fits. */
export interface RemoteOutputRequest {
  readonly selector: OutputSelector;
  readonly cursor: number;
  readonly follow: boolean;
  /** Ends the stream early: the request to the peer is closed with it. */
  readonly signal?: AbortSignal;
}

/**
 * `NODE_UNAVAILABLE` for a peer that gave no answer at all (it could not be reached, or was silent
 * past the answer's timeout), as opposed to one that answered with a refusal: only then may what
 * the call asked for have been left undone for want of the peer (`JobService.stop` records a stop).
 */
export class PeerUnreachableError extends JobworkerError {
  static override readonly errorName = 'PeerUnreachableError';
  constructor(message: string, options?: ErrorOptions) {
    super('NODE_UNAVAILABLE', message, options);
  }
}

/**
 * The calls a node forwards to the node that runs a job (`RemoteNode` implements it). Each acts as
 * `who`, whom this node has already authenticated and authorised. Errors the peer answers keep their
 * code and message; a peer that cannot be reached, or that refuses this node's credentials, is
 * `NODE_UNAVAILABLE` naming it and its URL.
 */
export interface NodePeer {
  /** The peer's node id. */
  readonly node: string;
  /** Its base URL, as it advertises it. */
  readonly url: string;
  openOutput(who: Principal, id: string, request: RemoteOutputRequest): Promise<RemoteOutput>;
  /** Resolves with the job as recorded once the peer has taken the stop (still `running` while it stops). */
  stop(who: Principal, id: string, graceMs?: number): Promise<Job>;
  pause(who: Principal, id: string): Promise<Job>;
  resume(who: Principal, id: string): Promise<Job>;
  /** What only the node that runs a job can read of it: its output sizes and usage so far. */
  live(who: Principal, id: string): Promise<LiveFigures>;
}

/** A running job's figures that its node reads from its files and cgroups (`JobEngine.get`). */
export type LiveFigures = Pick<Job, 'outputBytes' | 'usage'>;

/**
 * How a `JobService` reaches the node that runs a job (`JobServiceOptions.cluster`). Absent: every
 * job is this server's own, as on a single machine.
 */
export interface ClusterRouting {
  /** This node's id: the `node` of the jobs it runs. */
  readonly node: string;
  /** The peer with this id, or undefined when none is known (never joined, or left). */
  peer(nodeId: string): Promise<NodePeer | undefined>;
  /**
   * How often a wait (`waitFor`, `run`) for a job on a peer reads the job from the store, in ms.
   * Default 1000. With `ended`, the poll only covers a notification that was lost.
   */
  readonly pollMs?: number;
  /**
   * Resolves once the store says job `id` reached a final status (`NOTIFY jobworker_job_ended`),
   * so that a wait ends at once rather than at the next poll; never resolves once `signal` aborts.
   */
  ended?(id: string, signal: AbortSignal): Promise<void>;
}
