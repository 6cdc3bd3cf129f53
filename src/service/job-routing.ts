import type { Caller, Principal } from '../auth/principal.ts';
import type {
  ClusterRouting,
  NodePeer,
  RemoteOutput,
  RemoteOutputRequest,
} from '../cluster/cluster-routing.ts';
import type { Clock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';
import { isActive, isFinal, type Job } from '../core/job.ts';
import { linkSignals } from '../core/linked-signal.ts';
import type { FollowEvent } from '../engine/job-engine.ts';
import { streamEnded } from './user-streams.ts';

/**
 * Which calls about a job go to another node (docs/cluster.md, "Forwarding between nodes"): those
 * that need its output files or its processes, which live on the node that runs it (`Job.node`).
 */
export class JobRouting {
  readonly #cluster: ClusterRouting | undefined;

  constructor(cluster: ClusterRouting | undefined) {
    this.#cluster = cluster;
  }

  /** True when the job belongs to another node of the cluster. */
  elsewhere(job: Job): boolean {
    return this.#cluster !== undefined && job.node !== this.#cluster.node;
  }

  /**
   * The node a job's output must be read from, when it is not this one: every job that has run
   * holds its output on the node that ran it (a queued job has none yet).
   */
  outputPeer(who: Caller, job: Job): Promise<NodePeer | undefined> {
    if (job.status === 'queued') return Promise.resolve(undefined);
    return this.#peerOf(who, job);
  }

  /** The node whose processes a stop, pause or resume must reach: only a running or paused job has any. */
  processPeer(who: Caller, job: Job): Promise<NodePeer | undefined> {
    if (!isActive(job.status)) return Promise.resolve(undefined);
    return this.#peerOf(who, job);
  }

  async #peerOf(who: Caller, job: Job): Promise<NodePeer | undefined> {
    const cluster = this.#cluster;
    if (cluster === undefined || job.node === cluster.node) return undefined;
    if (who.via !== undefined) {
      // Never forwarded twice: two nodes that disagree on where a job runs must not bounce it.
      throw new JobworkerError(
        'NODE_UNAVAILABLE',
        `Node ${JSON.stringify(who.via)} forwarded job ${job.id} to this node (${JSON.stringify(cluster.node)}), ` +
          `but it runs on node ${JSON.stringify(job.node)}; a forwarded call is not forwarded again`,
      );
    }
    const peer = await cluster.peer(job.node);
    if (peer === undefined) {
      throw new JobworkerError(
        'NODE_UNAVAILABLE',
        `Job ${job.id} runs on node ${JSON.stringify(job.node)}, which is not a known node of the cluster now ` +
          '(it left, or has not joined yet)',
      );
    }
    return peer;
  }
}

export interface RelayRequest extends RemoteOutputRequest {
  /** Gives the follower slot back: called once, when the relay ends or is closed. */
  readonly release: () => void;
  /** Ends the relay too (the server shuts down); absent for a read that ends on its own. */
  readonly shutdown?: AbortSignal;
  /** Ends the relay with UNAUTHENTICATED: the caller's credentials changed (`endStreamsOf`). */
  readonly revoked?: AbortSignal;
}

/**
 * Opens a job's output on its node and relays it. The peer checks the selector and the cursor
 * before this resolves, so refusals still come before the stream. Progress events are not relayed:
 * frames carry output only (the job's progress is in the store).
 */
export async function relayRemoteOutput(
  peer: NodePeer,
  who: Principal,
  id: string,
  request: RelayRequest,
): Promise<RemoteOutput> {
  const stop = linkSignals([request.signal, request.shutdown, request.revoked]);
  const done = (): void => {
    stop.dispose();
    request.release();
  };
  let remote: RemoteOutput;
  try {
    remote = await peer.openOutput(who, id, {
      selector: request.selector,
      cursor: request.cursor,
      follow: request.follow,
      signal: stop.signal,
    });
  } catch (err) {
    done();
    throw revokedOr(err);
  }
  // Ended because the caller's credentials changed (`revoked`), not by the caller: that is the
  // error, whatever the peer's answer or its abort looked like meanwhile.
  function revokedOr(err: unknown): unknown {
    return request.revoked?.aborted && !request.signal?.aborted
      ? streamEnded(request.revoked, who.user)
      : err;
  }
  async function* relay(): AsyncGenerator<FollowEvent> {
    try {
      yield* remote;
      if (request.revoked?.aborted && !request.signal?.aborted) throw streamEnded(request.revoked, who.user);
    } catch (err) {
      throw revokedOr(err);
    } finally {
      done();
    }
  }
  const stream = relay();
  const close = stream.return.bind(stream);
  // Closed before it ever ran (its `finally` is then skipped): give the slot back, close the peer's response.
  stream.return = async (value) => {
    done();
    await remote.return(undefined);
    return close(value);
  };
  return Object.assign(stream, { end: remote.end });
}

/**
 * Reads a job from the store on the clock until `done` holds for it (by default: it is final): the
 * engine hears only of the jobs this node runs, and in a cluster another node may claim a job
 * submitted here, or run the one waited for. Polling rather than following the job's output from
 * its node: it holds no connection, costs one get by id per interval, and still ends when that
 * node is lost and the job is decided in the store without it. Never resolves once `signal` aborts.
 */
export async function pollUntil(
  get: (id: string) => Promise<Job>,
  id: string,
  options: { clock: Clock; intervalMs: number; signal: AbortSignal; done?: (job: Job) => boolean },
): Promise<Job | undefined> {
  const { clock, signal } = options;
  const done = options.done ?? ((job: Job) => isFinal(job.status));
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      const cancel = () => timer.clear();
      const timer = clock.setTimer(() => {
        signal.removeEventListener('abort', cancel);
        resolve();
      }, options.intervalMs);
      signal.addEventListener('abort', cancel, { once: true });
    });
    if (signal.aborted) break;
    const job = await get(id).catch(() => undefined);
    if (job && done(job)) return job;
  }
  return new Promise(() => undefined);
}
