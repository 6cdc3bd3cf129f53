import { EventEmitter, getEventListeners, once } from 'node:events';
import { isIP } from 'node:net';
import { type Caller, type Principal, seesEveryJob, tokenExpired } from '../auth/principal.ts';
import { type ClusterRouting, type NodePeer, PeerUnreachableError } from '../cluster/cluster-routing.ts';
import { type AuditAction, type AuditSink, NO_AUDIT } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import {
  DuplicateJobError,
  IllegalTransitionError,
  InUseError,
  JobworkerError,
  NotFinishedError,
  NotFoundError,
  ValidationError,
} from '../core/errors.ts';
import { checkGraceMs } from '../core/grace.ts';
import { isJobId } from '../core/ids.ts';
import { normalizeIsolation } from '../core/isolation.ts';
import {
  isActive,
  isFinal,
  type Job,
  type JobAccount,
  type JobIsolation,
  type JobStatus,
  type JobTaskRun,
  type PendingAccount,
} from '../core/job.ts';
import { type LimitSettings, normalizeLimitSettings } from '../core/limits.ts';
import { linkSignals, unboundedController } from '../core/linked-signal.ts';
import { queueName } from '../core/spec.ts';
import type { DrainState, FollowEvent, JobEngine, SubmitResult } from '../engine/job-engine.ts';
import type { OutputReader } from '../output/output-reader.ts';
import type { OutputEvent, OutputRead, OutputSelector, OutputSpan } from '../output/output-types.ts';
import { PagePool } from '../output/page-pool.ts';
import type { JobPage, QueueSettings, QueueState } from '../store/job-store.ts';
import { auditedCall } from './audited-call.ts';
import { watchEvents } from './event-watch.ts';
import { JobEventFeed, type WatchMessage } from './job-event-feed.ts';
import { resolveJobRef } from './job-ref.ts';
import { JobRouting, pollUntil, relayRemoteOutput } from './job-routing.ts';
import { latestAttempt } from './latest-attempt.ts';
import { requireAdmin } from './require-admin.ts';
import { AlreadyFinishedError, CapacityError, JobFailedError } from './service-errors.ts';
import {
  callExpired,
  callRevoked,
  streamEnded,
  streamExpired,
  streamRevoked,
  UserStreams,
} from './user-streams.ts';
import { type HeartbeatEvent, withHeartbeats } from './with-heartbeats.ts';

/** What the service needs of the engine. */
export type JobEnginePort = Pick<
  JobEngine,
  | 'start'
  | 'submit'
  | 'get'
  | 'getRecorded'
  | 'list'
  | 'stop'
  | 'recordStop'
  | 'readOutput'
  | 'viewEnd'
  | 'openReader'
  | 'follow'
  | 'waitFor'
  | 'untilStarted'
  | 'pause'
  | 'resume'
  | 'queue'
  | 'queues'
  | 'setQueue'
  | 'drain'
  | 'undrain'
  | 'drainState'
  | 'drained'
  | 'delete'
  | 'prune'
  | 'result'
  | 'on'
  | 'off'
>;

/**
 * Picks the OS account of a submitted job: `JobAccounts` fits (src/accounts/job-accounts.ts). One
 * still to be made (a first pool account) comes pending: the engine makes it once the spec passed.
 */
export interface AccountResolver {
  accountFor(who: Principal, runAsRoot: boolean): Promise<JobAccount | PendingAccount>;
}

export interface JobServiceOptions {
  /**
   * Who a submitted job runs as (docs/security.md). Absent: every job runs as the server's own
   * account, as with a program that embeds the service.
   */
  readonly accounts?: AccountResolver;
  /** Follows open at once, all users together; one more is refused with CAPACITY_EXHAUSTED. Default 4096. */
  readonly maxFollowers?: number;
  /**
   * Output reads and follows open at once by one user: one user cannot take every slot of
   * `maxFollowers` from the others. Default 1024 (a quarter of them).
   */
  readonly maxFollowersPerUser?: number;
  /** Page size of `list` when the caller names none. Default 50. */
  readonly defaultPageSize?: number;
  /** Where every state-changing call is recorded (docs/security.md, "Audit trail"). Default: nowhere. */
  readonly audit?: AuditSink;
  /** The time audit entries carry, and the timer of event heartbeats. Default: the system clock. */
  readonly clock?: Clock;
  /**
   * A user's limit defaults and maxima (set by an admin: `UserService.setUser`), applied to the
   * jobs it submits after its queue's (docs/isolation.md). Absent: users have none.
   */
  readonly userLimits?: (user: string) => LimitSettings | undefined;
  /**
   * Isolation every job of a non-admin gets, on top of what it asks for (`serve
   * --force-isolation`: `ISOLATE_PRESET`); a non-admin asking for less of it is refused
   * (FORBIDDEN, naming the field). Null: no policy. Default null.
   */
  readonly forceIsolation?: JobIsolation | null;
  /**
   * Which addresses a job's own webhook may reach (docs/webhooks.md, "SSRF"): a `notify.url` whose
   * host is an address the caller may not reach is refused at submission, with nothing created
   * (names are checked when delivered). Default: no check here.
   */
  readonly webhookPolicy?: { refusal(address: string, trusted: boolean): string | null };
  /** Recent job events kept so that an event watcher can resume (`Last-Event-ID`). Default 1000. */
  readonly eventHistory?: number;
  /**
   * An event watcher, and a follower of a job's output as frames or server-sent events, gets a
   * heartbeat after this long without a message. Default 15 s.
   */
  readonly eventHeartbeatMs?: number;
  /** Event watches open at once, all users together; one more is refused with CAPACITY_EXHAUSTED. Default 1024. */
  readonly maxWatchers?: number;
  /** Event watches open at once by one user (see `maxFollowersPerUser`). Default 256. */
  readonly maxWatchersPerUser?: number;
  /**
   * This node's place in a cluster (docs/cluster.md, "Forwarding between nodes"): the output of a
   * job that ran on another node, and the stop, pause and resume of one running there, are
   * forwarded to that node, and waits for it read the store. Absent: every job is this server's.
   */
  readonly cluster?: ClusterRouting;
  /**
   * Whether what authorized a call is gone since it was authenticated (`UserDirectory.isStale`:
   * its token revoked, its user disabled, removed or given another role, by `Caller.revision` and
   * `Caller.tokenId`): such a call opens no stream and changes nothing (UNAUTHENTICATED); the
   * streams open already were ended (`endStreamsOf`). Absent: callers are not checked so.
   */
  readonly credentialsStale?: (caller: Caller) => boolean;
}

export const SERVICE_DEFAULTS = {
  maxFollowers: 4096,
  maxFollowersPerUser: 1024,
  defaultPageSize: 50,
  audit: NO_AUDIT,
  clock: systemClock,
  forceIsolation: null,
  eventHistory: 1000,
  eventHeartbeatMs: 15_000,
  maxWatchers: 1024,
  maxWatchersPerUser: 256,
} as const satisfies Required<
  Omit<JobServiceOptions, 'accounts' | 'userLimits' | 'webhookPolicy' | 'cluster' | 'credentialsStale'>
>;

/** How often a wait for a job on another node reads it from the store, by default. */
const CLUSTER_POLL_MS = 1000;

/**
 * Bytes read per page when a view is read to its current end (not followed). Each page costs about
 * a millisecond of fixed work (the job, the kept window twice, opening the files), so pages are
 * large: 1 MiB read 4x faster than 64 KiB (docs/performance.md); memory per reader stays bounded.
 */
const PAGE_BYTES = 1024 * 1024;
/** Pages kept for reuse between reads to the end: two per reader (one written, one read ahead). */
const IDLE_PAGES = 8;
/**
 * Bytes of a finished output described per `spans` event: nothing is read, so a batch costs only
 * the index lookups; large, so that a catch-up read is a few events, not one per megabyte.
 */
const SPAN_BYTES = 64 * 1024 * 1024;

/**
 * A queue's settings as an admin changes them: the limits as a spec writes them (units allowed,
 * `normalizeLimits`); `null` or `{}` clears them.
 */
export type QueueSettingsInput = Partial<Omit<QueueSettings, 'defaultLimits' | 'maxLimits'>> & {
  readonly defaultLimits?: unknown;
  readonly maxLimits?: unknown;
};

export interface ListJobsRequest {
  readonly status?: readonly JobStatus[];
  readonly name?: string;
  /** Exact queue name. */
  readonly queue?: string;
  /** Case-insensitive substring of the name or the command line (`JobListQuery.text`). */
  readonly text?: string;
  /** Jobs whose id starts with this. */
  readonly idPrefix?: string;
  readonly label?: { readonly key: string; readonly value: string };
  /** Jobs of this user; a user names only itself (another's name lists nothing, as if it had none). */
  readonly owner?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

export interface OutputRequest {
  readonly selector: OutputSelector;
  readonly cursor: number;
  /** True: stream until the job ends. False: what exists now, then the end. */
  readonly follow: boolean;
  /** Ends the stream early (the client went away); it then ends without its `end` event. */
  readonly signal?: AbortSignal;
  /** With `follow`: also `progress` events, as the job reports progress (docs/tasks.md). */
  readonly progress?: boolean;
  /**
   * Without `follow`: the bytes of a finished job of this node may come as `spans` events (where
   * they lie in its files) instead of `output` events, for an adapter that has the kernel copy
   * them to its client (REST's sendfile). A running job's, or another node's, come as `output`.
   */
  readonly spans?: boolean;
}

/**
 * Bytes of a finished job's output where they lie in its files (`OutputRequest.spans`). The
 * descriptors stay open until the consumer asks for the next event: it must be done with every
 * copy from them by then (a copy still in flight must be waited for, not abandoned).
 */
export interface SpansEvent {
  readonly type: 'spans';
  readonly spans: readonly OutputSpan[];
}

/** How a submission came to be, besides its spec. */
export interface SubmitOptions {
  /** The named task it runs, with its validated parameters (`TaskService.run`). */
  readonly task?: JobTaskRun;
}

/** A succeeded job and the JSON text of its result (`null` when it wrote none). */
export interface JobResult {
  readonly job: Job;
  readonly json: string;
}

/** Lines of stderr a failed job's result error shows. */
export const STDERR_TAIL_LINES = 10;
/** A view of a job's output as `openOutput` opens it. */
export type OutputStream<E = FollowEvent> = AsyncGenerator<E> & {
  /** The view's end when it was opened: its length so far (a client reads a tail from it). */
  readonly end: number;
} & EndedForCaller;

/** An event watch as `watchEvents` opens it. */
export type EventWatch = AsyncGenerator<WatchMessage> & EndedForCaller;

/** What a stream's adapter learns of it being ended for its caller. */
export interface EndedForCaller {
  /**
   * Aborts when the stream is ended for its caller (its token revoked or expired, its user
   * disabled, removed or given another role). The stream itself ends, with that error, at its
   * next read: an adapter waiting for a client that stopped reading must cut its response now,
   * or the client would keep the stream's place for as long as it does not read.
   */
  readonly ended: AbortSignal;
}

/** Lifecycle events of the service, named `noun:verb`; tests and diagnostics listen to them. */
export interface ServiceEvents {
  'follower:open': [jobId: string];
  'follower:close': [jobId: string];
}

/** A follower slot (`#takeFollower`): whose stream it is, and how it ends. */
interface Follower {
  readonly user: string;
  /** Aborts when its user's streams, or those of the token it was opened with, end (`endStreamsOf`). */
  readonly signal: AbortSignal;
  /** Gives the slot back. Idempotent. */
  readonly release: () => void;
}

/**
 * The one API every adapter calls (REST now, RPC later). It authorizes each call: a user sees and
 * stops only its own jobs, an admin all of them, a viewer reads all of them and changes nothing,
 * and another user's job answers exactly like an unknown one (NOT_FOUND). It records every
 * state-changing call, allowed or refused, in the audit trail (so every adapter gets it), validates
 * ids, bounds the number of open follows, and ends every open stream at shutdown (the jobs keep
 * running). Methods take a `Caller`: a principal, plus where the call came from when an adapter knows.
 */
export class JobService extends EventEmitter<ServiceEvents> {
  readonly #engine: JobEnginePort;
  readonly #options: Required<
    Omit<JobServiceOptions, 'accounts' | 'userLimits' | 'webhookPolicy' | 'cluster' | 'credentialsStale'>
  >;
  readonly #cluster: ClusterRouting | undefined;
  readonly #routing: JobRouting;
  readonly #webhookPolicy: JobServiceOptions['webhookPolicy'];
  readonly #accounts: AccountResolver | undefined;
  readonly #userLimits: ((user: string) => LimitSettings | undefined) | undefined;
  readonly #credentialsStale: ((caller: Caller) => boolean) | undefined;
  /**
   * Aborted at shutdown. Every wait, follow, event watch and drain wait listens on it while it
   * lasts (`linkSignals`): hundreds at once are expected, so it takes any number without Node's
   * leak warning.
   */
  readonly #shutdown = unboundedController();
  /** The streams each user has open, to end when its credentials change (`endStreamsOf`). */
  readonly #userStreams: UserStreams;
  readonly #pages = new PagePool(PAGE_BYTES, IDLE_PAGES);
  #followers = 0;
  #watchers = 0;
  readonly #events: JobEventFeed;

  constructor(engine: JobEnginePort, options: JobServiceOptions = {}) {
    super();
    this.#engine = engine;
    this.#options = { ...SERVICE_DEFAULTS, ...options };
    this.#accounts = options.accounts;
    this.#userLimits = options.userLimits;
    this.#credentialsStale = options.credentialsStale;
    this.#userStreams = new UserStreams(this.#options.clock);
    this.#webhookPolicy = options.webhookPolicy;
    this.#cluster = options.cluster;
    this.#routing = new JobRouting(options.cluster);
    this.#events = new JobEventFeed(engine, {
      clock: this.#options.clock,
      capacity: this.#options.eventHistory,
    });
  }

  /**
   * Watches the job events the caller may see (a user its own jobs, admins and viewers every job),
   * from now or, with `lastEventId`, from after that event (see `WatchMessage`). Refusals (too many
   * watchers) come before the stream; `signal` or shutdown ends it.
   */
  async watchEvents(
    who: Principal,
    request: { lastEventId?: string | undefined; signal?: AbortSignal } = {},
  ): Promise<EventWatch> {
    if (this.#watchers >= this.#options.maxWatchers) {
      throw new CapacityError(
        `The server already has ${this.#watchers} event watchers, its limit; try again later`,
      );
    }
    if (this.#userStreams.count(who.user, 'events') >= this.#options.maxWatchersPerUser) {
      throw new CapacityError(
        `User ${who.user} already has ${this.#options.maxWatchersPerUser} event watchers, its limit; close one first`,
      );
    }
    // Authorized when the call was authenticated: refused if that is gone since (the streams open
    // then were ended; this one would have escaped).
    const stale = this.#staleError(who, 'stream');
    if (stale) throw stale;
    const hold = this.#userStreams.take(
      who.user,
      'events',
      (who as Caller).tokenId,
      (who as Caller).tokenExpiresAt,
    );
    this.#watchers++;
    const stop = linkSignals([this.#shutdown.signal, request.signal, hold.signal]);
    const inner = watchEvents({
      feed: this.#events,
      visible: (job) => maySee(who, job),
      lastEventId: request.lastEventId,
      clock: this.#options.clock,
      heartbeatMs: this.#options.eventHeartbeatMs,
      backlog: this.#options.eventHistory,
      signal: stop.signal,
    });
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#watchers--;
      stop.dispose();
      hold.release();
    };
    async function* counted(): AsyncGenerator<WatchMessage> {
      try {
        yield* inner;
        // Ended because what authorized it is gone: an error, not a quiet end the client would
        // take for a server going away and open again without being asked for credentials.
        if (hold.signal.aborted) throw streamEnded(hold.signal, who.user);
      } finally {
        release();
      }
    }
    const stream = counted();
    const close = stream.return.bind(stream);
    // A generator closed before it ever ran skips its `finally`: release the slot here too.
    stream.return = async (value) => {
      release();
      await inner.return(undefined);
      return close(value);
    };
    return Object.assign(stream, { ended: hold.signal });
  }

  /** Event watches open right now. */
  get watchers(): number {
    return this.#watchers;
  }

  /** Listeners on the shutdown signal: one per wait, follow, event watch or drain wait under way (leak checks). */
  get shutdownListeners(): number {
    return getEventListeners(this.#shutdown.signal, 'abort').length;
  }

  /** Starts a job owned by the caller. Bad input is a `ValidationError` and creates nothing. */
  async start(who: Caller, input: unknown): Promise<Job> {
    return (await this.submit(who, input)).job;
  }

  /**
   * Submits a job owned by the caller to its queue (docs/queues.md). A job named in `after` must be
   * one the caller may see: another user's answers like an unknown id. A `dedupeKey` is unique
   * among the caller's own jobs; only an admin may name another user's scope (`dedupeScope`). The
   * job runs as the caller's OS account (see `AccountResolver`); only an admin may ask for root.
   */
  submit(who: Caller, input: unknown, options: SubmitOptions = {}): Promise<SubmitResult> {
    return this.#audited(
      who,
      'job:submit',
      (result) => result?.job.id ?? null,
      () => this.#submit(who, input, options),
    );
  }

  async #submit(who: Caller, input: unknown, options: SubmitOptions): Promise<SubmitResult> {
    requireWriter(who, 'start a job');
    const { after, dedupeScope, runAsRoot } = (input ?? {}) as {
      after?: unknown;
      dedupeScope?: unknown;
      runAsRoot?: unknown;
    };
    if (runAsRoot !== undefined && typeof runAsRoot !== 'boolean') {
      throw ValidationError.expected('runAsRoot', 'a boolean', runAsRoot);
    }
    if (runAsRoot === true && who.role !== 'admin') {
      throw new ValidationError(
        'runAsRoot',
        'Only an admin may run a job as root (`runAsRoot`)',
        'FORBIDDEN',
      );
    }
    if (who.role !== 'admin' && typeof dedupeScope === 'string' && dedupeScope !== who.user) {
      throw new ValidationError(
        'dedupeScope',
        `Only an admin may name another user's \`dedupeScope\`; yours is \`${who.user}\` (the default)`,
        'FORBIDDEN',
      );
    }
    if (who.role !== 'admin' && Array.isArray(after)) {
      for (const [i, id] of after.entries()) {
        if (typeof id !== 'string' || !isJobId(id)) continue; // the spec check names it
        // Only "no such job" reads as one; a store that fails says so (not "no job with id").
        const dep = await this.#engine.getRecorded(id).catch((err: unknown) => {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        });
        if (!dep || !maySee(who, dep)) throw new ValidationError(`after[${i}]`, `No job with id ${id}`);
      }
    }
    const forced = who.role === 'admin' ? null : this.#options.forceIsolation;
    if (forced) refuseLessIsolation((input as { isolation?: unknown } | null)?.isolation, forced);
    this.#checkNotifyAddress(who, (input as { notify?: unknown } | null)?.notify);
    const account = await this.#accounts?.accountFor(who, runAsRoot === true);
    try {
      const limits = this.#userLimits?.(who.user);
      const result = await this.#engine.submit(input, {
        user: who.user,
        ...(account ? { account } : {}),
        ...(limits ? { limits } : {}),
        ...(who.isolation ? { defaultIsolation: who.isolation } : {}),
        ...(forced ? { forcedIsolation: forced } : {}),
        ...(options.task ? { task: options.task } : {}),
      });
      if (!result.created && !maySee(who, result.job)) throw new DuplicateJobError(result.job);
      return result;
    } catch (err) {
      // Another user's job with the key: say there is one, never show it (like an unknown job).
      if (err instanceof DuplicateJobError && !maySee(who, err.job)) {
        throw new JobworkerError('DUPLICATE', 'A job with this dedupeKey is queued or running');
      }
      throw err;
    }
  }

  /**
   * The result a job the caller may see left at `JOBWORKER_RESULT` (docs/tasks.md): its JSON
   * text once it succeeded (`null` when it wrote none). Of a job that was retried, its latest
   * attempt's (`latest`): the run's result, which a failed first attempt is not. Before it ends,
   * `NOT_FINISHED` naming its status; when it did not succeed, `JOB_FAILED` naming its status,
   * exit and the last lines of its stderr; when its result could not be kept, `JOB_FAILED` saying
   * why.
   */
  async result(who: Principal, id: string): Promise<JobResult> {
    const job = await this.latest(who, id);
    if (!isFinal(job.status)) {
      throw new NotFinishedError(
        job.id,
        job.status,
        `Job ${job.id} is ${job.status}: its result is known once it has finished`,
      );
    }
    if (job.status !== 'succeeded') {
      const tail = await this.#stderrTail(who, job);
      const why = job.exit?.reason ?? job.status;
      throw new JobFailedError(
        job,
        `Job ${job.id} ${job.status === 'failed' ? 'failed' : `ended ${job.status}`} (${why}): it has no result` +
          (tail === '' ? '' : `; the last lines of its stderr:\n${tail}`),
        tail,
      );
    }
    if (job.resultError !== null) {
      throw new JobFailedError(
        job,
        `Job ${job.id} succeeded but its result was not kept: ${job.resultError}`,
        '',
      );
    }
    return { job, json: (await this.#engine.result(job.id)) ?? 'null' };
  }

  /** The last lines of a job's stderr (at most `STDERR_TAIL_LINES` of its last 4 KiB), as text. */
  async #stderrTail(who: Principal, job: Job): Promise<string> {
    const end = job.outputBytes.stderr;
    if (end === 0) return '';
    const cursor = Math.max(0, end - 4096);
    const events = await this.#routing
      .outputPeer(who, job)
      .then(async (peer) => {
        if (!peer) {
          return (await this.#engine.readOutput(job.id, { selector: 'stderr', cursor, limitBytes: 4096 }))
            .events;
        }
        const read: OutputEvent[] = [];
        for await (const event of await peer.openOutput(who, job.id, {
          selector: 'stderr',
          cursor,
          follow: false,
        })) {
          if (event.type === 'output') read.push(...event.events);
        }
        return read;
      })
      .catch(() => undefined);
    if (!events) return '';
    const text = Buffer.concat(events.flatMap((e) => (e.type === 'data' ? [e.data] : []))).toString('utf8');
    const lines = text.replace(/\n$/, '').split('\n');
    return lines.slice(-STDERR_TAIL_LINES).join('\n');
  }

  /** A `notify.url` naming an address the caller's webhooks may not reach: refused now, not at delivery. */
  #checkNotifyAddress(who: Caller, notify: unknown): void {
    const url = (notify as { url?: unknown } | null | undefined)?.url;
    if (this.#webhookPolicy === undefined || typeof url !== 'string' || !URL.canParse(url)) return;
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) === 0) return;
    const refusal = this.#webhookPolicy.refusal(host, who.role === 'admin');
    if (refusal) throw new ValidationError('notify.url', `Refused \`notify.url\`: ${refusal}`);
  }

  /** Freezes a running job of the caller's (`ILLEGAL_TRANSITION` when it is not running). */
  pause(who: Caller, id: string): Promise<Job> {
    return this.#audited(who, 'job:pause', id, async () => {
      const job = await this.#getToChange(who, id, 'pause a job');
      const peer = await this.#routing.processPeer(who, job);
      if (peer) return peer.pause(who, id);
      // Another node's job with no processes: refused as the engine refuses its own.
      if (this.#routing.elsewhere(job)) throw new IllegalTransitionError(id, job.status, 'paused');
      return this.#engine.pause(id);
    });
  }

  /** Thaws a paused job of the caller's (`ILLEGAL_TRANSITION` when it is not paused). */
  resume(who: Caller, id: string): Promise<Job> {
    return this.#audited(who, 'job:resume', id, async () => {
      const job = await this.#getToChange(who, id, 'resume a job');
      const peer = await this.#routing.processPeer(who, job);
      if (peer) return peer.resume(who, id);
      if (this.#routing.elsewhere(job)) throw new IllegalTransitionError(id, job.status, 'running');
      return this.#engine.resume(id);
    });
  }

  /** Every queue with its settings and counts; anyone may read them. */
  queues(): Promise<QueueState[]> {
    return this.#engine.queues();
  }

  queue(name: string): Promise<QueueState> {
    return this.#engine.queue(queueName('name', name));
  }

  /** Changes a queue's settings: admins only. */
  setQueue(who: Caller, name: string, settings: QueueSettingsInput): Promise<QueueState> {
    return this.#audited(who, 'queue:set', name, () => this.#setQueue(who, name, settings));
  }

  async #setQueue(who: Caller, name: string, settings: QueueSettingsInput): Promise<QueueState> {
    requireAdmin(who, 'change a queue');
    const { concurrency, maxWaiting } = settings;
    if (
      concurrency !== undefined &&
      concurrency !== null &&
      !(Number.isSafeInteger(concurrency) && concurrency >= 1)
    ) {
      throw ValidationError.expected('concurrency', 'an integer from 1, or null for no limit', concurrency);
    }
    if (
      maxWaiting !== undefined &&
      maxWaiting !== null &&
      !(Number.isSafeInteger(maxWaiting) && maxWaiting >= 0)
    ) {
      throw ValidationError.expected('maxWaiting', 'an integer from 0, or null for no limit', maxWaiting);
    }
    const { isolation } = settings as { isolation?: unknown };
    const checked =
      isolation === undefined || isolation === null
        ? settings
        : { ...settings, isolation: normalizeIsolation(isolation, 'isolation') };
    const { defaultLimits: _d, maxLimits: _m, ...plain } = checked;
    const { defaults, maxima } = normalizeLimitSettings(checked);
    if (!defaults && !maxima) return this.#engine.setQueue(queueName('name', name), plain);
    // A default is checked against the maximum it will sit under, whichever of the two changes.
    const current = defaults && maxima ? undefined : await this.#engine.queue(queueName('name', name));
    normalizeLimitSettings({
      defaultLimits: defaults ?? current?.defaultLimits,
      maxLimits: maxima ?? current?.maxLimits,
    });
    return this.#engine.setQueue(queueName('name', name), {
      ...plain,
      ...(defaults ? { defaultLimits: defaults } : {}),
      ...(maxima ? { maxLimits: maxima } : {}),
    });
  }

  /**
   * Stops dispatching on this server: admins only. With `wait`, resolves once no job runs here,
   * or when `signal` (the client went away) or shutdown ends the wait, with the state then.
   */
  async drain(who: Caller, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<DrainState> {
    const state = await this.#audited(who, 'server:drain', null, () => {
      requireAdmin(who, 'drain the server');
      return this.#engine.drain();
    });
    if (!options.wait) return state;
    const stop = linkSignals([this.#shutdown.signal, options.signal]);
    try {
      return await this.#engine.drained(stop.signal).catch(() => this.#engine.drainState);
    } finally {
      stop.dispose();
    }
  }

  undrain(who: Caller): Promise<DrainState> {
    return this.#audited(who, 'server:undrain', null, () => {
      requireAdmin(who, 'undrain the server');
      return this.#engine.undrain();
    });
  }

  /** Whether the server drains: admins and viewers. */
  drainState(who: Caller): DrainState {
    if (!seesEveryJob(who.role)) {
      throw new JobworkerError('FORBIDDEN', 'Only an admin or a viewer may see the drain state');
    }
    return this.#engine.drainState;
  }

  /**
   * The job, if the caller may see it; NOT_FOUND otherwise, VALIDATION_FAILED (`id`) for a malformed
   * id. A job running on another node of a cluster gets its live figures (output sizes, usage) from
   * that node; when it cannot be asked, the record's, as they were last written (docs/cluster.md).
   */
  async get(who: Principal, id: string): Promise<Job> {
    const job = await this.#visible(who, id, (known) => this.#engine.get(known));
    if (!isActive(job.status) || !this.#routing.elsewhere(job)) return job;
    try {
      const peer = await this.#routing.processPeer(who, job);
      return peer === undefined ? job : { ...job, ...(await peer.live(who, id)) };
    } catch {
      // The job is answered all the same, whatever kept its node from answering (unreachable,
      // slow past the short wait `live` allows, its store away, the job gone from its view
      // meanwhile): its record is what every node knows of it.
      return job;
    }
  }

  /**
   * The job's latest attempt, as recorded: its `retriedAs` followed to the attempt that was not
   * retried (see `latestAttempt`): the job itself when it was never retried.
   */
  async latest(who: Principal, id: string): Promise<Job> {
    return latestAttempt(await this.#getRecorded(who, id), (next) => this.#getRecorded(who, next));
  }

  /**
   * Like `get`, without the live figures of a running job (see `JobEngine.getRecorded`): for the
   * checks and routing of a call that answers with something else (an output stream, a wait).
   */
  #getRecorded(who: Principal, id: string): Promise<Job> {
    return this.#visible(who, id, (known) => this.#engine.getRecorded(known));
  }

  /** The job `lookUp` finds, if the caller may see it; NOT_FOUND otherwise, as for an unknown id. */
  async #visible(who: Principal, id: string, lookUp: (id: string) => Promise<Job>): Promise<Job> {
    checkId(id);
    const job = await lookUp(id);
    if (!maySee(who, job)) throw new NotFoundError(id);
    return job;
  }

  /**
   * The job a reference names, among those the caller may see: a whole id, a unique id prefix of
   * at least 6 characters, the name of exactly one of the caller's own jobs, or `last` (the
   * caller's newest job). NOT_FOUND when nothing matches, AMBIGUOUS (listing some) when several do.
   */
  resolve(who: Principal, ref: string): Promise<Job> {
    return resolveJobRef(ref, {
      get: (id) => this.get(who, id),
      list: (query) => this.#engine.list(query),
      visibleOwner: seesEveryJob(who.role) ? undefined : who.user,
      self: who.user,
    });
  }

  /**
   * Deletes a finished job of the caller's (any job for an admin) with its output. Another user's
   * job answers NOT_FOUND like an unknown one; a queued, running or paused job NOT_FINISHED.
   */
  delete(who: Caller, id: string): Promise<Job> {
    return this.#audited(who, 'job:delete', id, async () => {
      await this.#getToChange(who, id, 'delete a job');
      try {
        return await this.#engine.delete(id);
      } catch (err) {
        // The jobs waiting for it may be other users' (an admin's job can wait for anyone's):
        // their ids are not this caller's to learn.
        if (!(err instanceof InUseError) || seesEveryJob(who.role)) throw err;
        throw await err.forCaller(async (dependent) => {
          const job = await this.#engine.get(dependent).catch(() => undefined);
          return job !== undefined && maySee(who, job);
        });
      }
    });
  }

  /**
   * Deletes the finished jobs that finished more than `olderThanMs` ago: every user's for an
   * admin, the caller's own for a user. Resolves with how many were deleted.
   */
  prune(who: Caller, request: { olderThanMs?: number } = {}): Promise<number> {
    return this.#audited(who, 'jobs:prune', null, () => this.#prune(who, request));
  }

  #prune(who: Caller, request: { olderThanMs?: number }): Promise<number> {
    requireWriter(who, 'delete jobs');
    const olderThanMs = request.olderThanMs ?? 0;
    if (!Number.isSafeInteger(olderThanMs) || olderThanMs < 0) {
      throw ValidationError.expected('olderThanMs', 'a whole number of milliseconds from 0', olderThanMs);
    }
    return this.#engine.prune({ olderThanMs, ...(who.role === 'admin' ? {} : { owner: who.user }) });
  }

  /** One page of the jobs the caller may see, newest first. */
  async list(who: Principal, request: ListJobsRequest): Promise<JobPage> {
    if (request.owner !== undefined && !seesEveryJob(who.role) && request.owner !== who.user) {
      return { jobs: [], nextCursor: null };
    }
    return this.#engine.list({
      ...request,
      limit: request.limit ?? this.#options.defaultPageSize,
      ...(seesEveryJob(who.role) ? {} : { owner: who.user }),
    });
  }

  /**
   * Asks a job to stop and returns it as recorded (still `running` until its processes are gone).
   * On a job that had already finished nothing changes: `AlreadyFinishedError`, carrying the job.
   */
  stop(who: Caller, id: string, options: { graceMs?: number } = {}): Promise<Job> {
    return this.#audited(who, 'job:stop', id, () => this.#stop(who, id, options));
  }

  async #stop(who: Caller, id: string, options: { graceMs?: number }): Promise<Job> {
    const { graceMs } = options;
    checkGraceMs(graceMs);
    const current = await this.#getToChange(who, id, 'stop a job');
    const peer = await this.#routing.processPeer(who, current);
    if (peer) {
      try {
        return await peer.stop(who, id, graceMs);
      } catch (err) {
        // It ended on its node meanwhile: answered as a local stop would, with the job as recorded.
        if (err instanceof JobworkerError && err.code === 'ALREADY_FINISHED') {
          throw new AlreadyFinishedError(await this.#engine.get(id));
        }
        // Its node cannot be reached (no answer at all: a refusal is passed on as it is): the stop
        // is recorded all the same, so that the job is not retried should that node be declared
        // lost; its processes are reached only through it.
        if (err instanceof PeerUnreachableError) {
          const recorded = await this.#engine
            .recordStop(id, { user: who.user }, graceMs === undefined ? {} : { graceMs })
            .then(
              () => true,
              () => false,
            );
          if (recorded) {
            throw new JobworkerError(
              'NODE_UNAVAILABLE',
              `${err.message}. The stop is recorded: should that node be declared lost, the job is not ` +
                'retried; its processes stop once the node answers a stop again, or when it starts again',
            );
          }
        }
        throw err;
      }
    }
    // Another node's finished job: nothing to reach, and this node's engine never ran it.
    if (this.#routing.elsewhere(current) && isFinal(current.status)) {
      throw new AlreadyFinishedError(current);
    }
    const { job, changed } = await this.#engine.stop(
      id,
      { user: who.user },
      graceMs === undefined ? {} : { graceMs },
    );
    // A queued job is cancelled at once: final, and changed by this very stop.
    if (isFinal(job.status) && !changed) throw new AlreadyFinishedError(job);
    return job;
  }

  /**
   * Opens a view of a job's output from a cursor. Everything that can be refused is checked before
   * this resolves (access, id, cursor, capacity), so an adapter can still answer with an error; the
   * stream itself then yields output batches and, last, one `end` event with the job: final when
   * following, as it is now otherwise. A stream cut short by `signal` or by shutdown ends without
   * its `end` event, and its client resumes from the last cursor it received.
   */
  async openOutput(
    who: Principal,
    id: string,
    request: OutputRequest & { readonly spans: boolean },
  ): Promise<OutputStream<FollowEvent | SpansEvent>>;
  async openOutput(
    who: Principal,
    id: string,
    request: OutputRequest & { readonly spans?: false },
  ): Promise<OutputStream>;
  async openOutput(
    who: Principal,
    id: string,
    request: OutputRequest,
  ): Promise<OutputStream<FollowEvent | SpansEvent>> {
    const job = await this.#getRecorded(who, id);
    const peer = await this.#routing.outputPeer(who, job);
    if (peer) return this.#openRemote(peer, who, id, request);
    // Validates the cursor (past the end is BAD_CURSOR) before any byte is sent.
    // The record just read serves the cursor check and the follow's start: a thousand followers
    // opening at once read it a thousand times, not three thousand.
    const end = await this.#engine.viewEnd(id, request.selector, request.cursor, {
      follow: request.follow,
      recorded: job,
    });
    const follower = this.#takeFollower(id, who);
    const stream = this.#stream(who, job, request, follower);
    const close = stream.return.bind(stream);
    // A generator closed before it ever ran skips its `finally`: release the slot here too.
    stream.return = (value) => {
      follower.release();
      return close(value);
    };
    return Object.assign(stream, { end, ended: follower.signal });
  }

  /** How long a watch or a follow goes without a message before it gets a heartbeat. */
  get heartbeatMs(): number {
    return this.#options.eventHeartbeatMs;
  }

  /** The service's clock: what its timers (heartbeats, waits) and audit times run on. */
  get clock(): Clock {
    return this.#options.clock;
  }

  /**
   * An output stream with heartbeats while it has nothing to give (`withHeartbeats`), every
   * `heartbeatMs` on the service's clock: for adapters that can only yield them (the RPC).
   */
  withHeartbeats<T>(stream: AsyncGenerator<T>): AsyncGenerator<T | HeartbeatEvent> {
    return withHeartbeats(stream, this.#options.clock, this.#options.eventHeartbeatMs);
  }

  /**
   * Ends the streams `user` has open, here and relayed from other nodes (event watches, output
   * reads and follows): those opened with token `tokenId` when one is given (that token alone was
   * revoked), else all of them (the user was disabled, removed or given another role). A stream is
   * authorized once, when it opens, and may last as long as its job. Each ends with
   * UNAUTHENTICATED (a REST response is cut, an RPC stream fails), so a client that opens it again
   * is asked for its credentials anew.
   */
  endStreamsOf(user: string, tokenId?: string): void {
    this.#userStreams.end(user, tokenId);
  }

  /**
   * Why `who` may no longer do what it was authenticated for, or undefined: its token expired
   * since, or what authorized it is gone (`credentialsStale`). `kind`: what it is about to do, a
   * stream or another call; the error says so.
   */
  #staleError(who: Principal, kind: 'stream' | 'call'): JobworkerError | undefined {
    if (tokenExpired(who as Caller, this.#options.clock.now().getTime())) {
      return kind === 'stream' ? streamExpired(who.user) : callExpired(who.user);
    }
    if (this.#credentialsStale?.(who as Caller) !== true) return undefined;
    return kind === 'stream' ? streamRevoked(who.user) : callRevoked(who.user);
  }

  /** Users with streams open (leak checks). */
  get streamingUsers(): number {
    return this.#userStreams.users;
  }

  /**
   * Takes a follower slot for `who`, or refuses with CAPACITY_EXHAUSTED (and UNAUTHENTICATED for a
   * stale caller): what gives it back (idempotent), and a signal that aborts when its streams are
   * ended (`endStreamsOf`).
   * The slot is taken in the same synchronous step as the check, so a burst of opens cannot all
   * pass it; the stream gives it back when it ends, or when it is closed before its first read.
   */
  #takeFollower(id: string, who: Principal): Follower {
    if (this.#followers >= this.#options.maxFollowers) {
      throw new CapacityError(
        `The server already streams ${this.#followers} outputs, its limit; try again later`,
      );
    }
    if (this.#userStreams.count(who.user, 'output') >= this.#options.maxFollowersPerUser) {
      throw new CapacityError(
        `User ${who.user} already streams ${this.#options.maxFollowersPerUser} outputs, its limit; close one first`,
      );
    }
    // Authorized when the call was authenticated: refused if that is gone since (the streams open
    // then were ended; this one would have escaped).
    const stale = this.#staleError(who, 'stream');
    if (stale) throw stale;
    this.#followers++;
    this.emit('follower:open', id);
    const hold = this.#userStreams.take(
      who.user,
      'output',
      (who as Caller).tokenId,
      (who as Caller).tokenExpiresAt,
    );
    let released = false;
    return {
      user: who.user,
      signal: hold.signal,
      release: () => {
        if (released) return;
        released = true;
        hold.release();
        this.#followers--;
        this.emit('follower:close', id);
      },
    };
  }

  /**
   * The output of a job on another node, relayed from it: a follower here like a local one (it
   * counts toward `maxFollowers` and, when it follows, ends at shutdown).
   */
  async #openRemote(
    peer: NodePeer,
    who: Principal,
    id: string,
    request: OutputRequest,
  ): Promise<OutputStream> {
    const follower = this.#takeFollower(id, who);
    const relayed = await relayRemoteOutput(peer, who, id, {
      ...request,
      release: follower.release,
      revoked: follower.signal,
      ...(request.follow ? { shutdown: this.#shutdown.signal } : {}),
    });
    return Object.assign(relayed, { ended: follower.signal });
  }

  /**
   * Starts a job and waits for it to finish. Resolves with the final job, or with the job as it
   * is if `signal` or shutdown ends the wait first (the job keeps running either way).
   */
  async run(who: Caller, input: unknown, signal?: AbortSignal): Promise<Job> {
    const job = await this.start(who, input);
    return this.#untilFinal(job.id, signal);
  }

  /**
   * Waits for a job the caller may see to reach a final status. Resolves with the final job, or
   * with the job as it is if `signal` or shutdown ends the wait first.
   */
  async waitFor(who: Principal, id: string, signal?: AbortSignal): Promise<Job> {
    // One under way when its caller's credentials changed is answered; one begun after, not.
    const stale = this.#staleError(who, 'call');
    if (stale) throw stale;
    // A final job's record is all of it; a running one's live figures would be read for nothing.
    const job = await this.#getRecorded(who, id);
    if (isFinal(job.status)) return job;
    return this.#untilFinal(id, signal);
  }

  async #untilFinal(id: string, signal?: AbortSignal): Promise<Job> {
    const stop = linkSignals([signal, this.#shutdown.signal]);
    try {
      const finished = await this.#untilAnywhere(
        id,
        stop.signal,
        (cancelled) => this.#engine.waitFor(id, cancelled),
        {
          done: (job) => isFinal(job.status),
        },
      );
      return finished ?? (await this.#engine.get(id));
    } finally {
      stop.dispose();
    }
  }

  /**
   * A queued job, in a cluster, once it has started on any node (or ended without: cancelled).
   * Undefined once `signal` aborts first.
   */
  #untilStartedAnywhere(id: string, signal: AbortSignal): Promise<Job | undefined> {
    return this.#untilAnywhere(id, signal, (cancelled) => this.#engine.untilStarted(id, cancelled), {
      done: (job) => job.status !== 'queued',
    });
  }

  /**
   * A job once `done` holds for it, whichever node runs it: this node's engine tells at once of what
   * it runs (`engineWait`), and in a cluster, where the engine may not know the job, the store's
   * notification of its end and its poll answer. Undefined once `signal` aborts first; no listener
   * or timer outlives the wait.
   */
  async #untilAnywhere(
    id: string,
    signal: AbortSignal,
    engineWait: (cancelled: AbortSignal) => Promise<Job>,
    options: { readonly done: (job: Job) => boolean },
  ): Promise<Job | undefined> {
    if (signal.aborted) return undefined;
    const cluster = this.#cluster;
    // Ended by `cancelled` alone: an abort of `signal` ends the race, and so the wait.
    const cancelled = new AbortController();
    const aborted = once(signal, 'abort', { signal: cancelled.signal }).then(
      () => undefined,
      () => undefined,
    );
    try {
      return await Promise.race([
        // A job the engine does not run (another node's) is answered by the store below instead.
        engineWait(cancelled.signal).catch(() =>
          cluster ? new Promise<undefined>(() => undefined) : undefined,
        ),
        aborted,
        ...(cluster?.ended ? [cluster.ended(id, cancelled.signal).then(() => this.#engine.get(id))] : []),
        ...(cluster
          ? [
              pollUntil((job) => this.#engine.get(job), id, {
                clock: this.#options.clock,
                intervalMs: cluster.pollMs ?? CLUSTER_POLL_MS,
                signal: cancelled.signal,
                done: options.done,
              }),
            ]
          : []),
      ]);
    } finally {
      cancelled.abort();
    }
  }

  /**
   * A job the caller may change: NOT_FOUND when it may not even see it (as an unknown id),
   * FORBIDDEN when it sees it but may not change it (a viewer).
   */
  async #getToChange(who: Principal, id: string, what: string): Promise<Job> {
    // The record: a change needs no live figures, nor to wait on another node for them.
    const job = await this.#getRecorded(who, id);
    requireWriter(who, what);
    return job;
  }

  #audited<T>(
    who: Caller,
    action: AuditAction,
    target: string | null | ((result: T | undefined) => string | null),
    run: () => T | Promise<T>,
  ): Promise<T> {
    // What authorized the call may have gone while its request arrived (its body, its turn).
    const checked = (): T | Promise<T> => {
      const stale = this.#staleError(who, 'call');
      if (stale) throw stale;
      return run();
    };
    return auditedCall(
      { sink: this.#options.audit, clock: this.#options.clock },
      who,
      action,
      target,
      checked,
    );
  }

  /** Streams of output open right now. */
  get followers(): number {
    return this.#followers;
  }

  /**
   * Ends every open follow, every event watch and every `run` wait, and resolves once every stream is closed (reads of
   * what exists are let finish). Jobs keep running. Idempotent. Follows opened afterwards end at once.
   */
  async shutdown(): Promise<void> {
    this.#shutdown.abort();
    // Watches end with the abort; the feed stops listening to the engine.
    this.#events.close();
    while (this.#followers > 0) await once(this, 'follower:close');
  }

  async *#stream(
    who: Principal,
    queuedOrRecorded: Job,
    request: OutputRequest,
    follower: Follower,
  ): AsyncGenerator<FollowEvent | SpansEvent> {
    let recorded = queuedOrRecorded;
    const { id } = recorded;
    // Shutdown ends follows, which could last forever; a read of what exists ends soon on its own.
    // The user's credentials changing ends both (endStreamsOf).
    const stop = linkSignals([
      request.signal,
      follower.signal,
      request.follow ? this.#shutdown.signal : undefined,
    ]);
    try {
      const { selector, cursor } = request;
      const signal = stop.signal;
      if (request.follow && recorded.status === 'queued' && this.#cluster) {
        // Any node may start it: its output is then on that node, and this engine hears only of
        // the jobs it runs. Followed from where it starts, once it has.
        const started = await this.#untilStartedAnywhere(id, signal);
        if (started === undefined) {
          if (follower.signal.aborted && !request.signal?.aborted)
            throw streamEnded(follower.signal, follower.user);
          return;
        }
        recorded = started;
        const peer = await this.#routing.outputPeer(who, started);
        if (peer) {
          // Its slot is this stream's (released below); a revocation ends the relay as it ends this.
          yield* await relayRemoteOutput(peer, who, id, {
            selector,
            cursor,
            follow: true,
            signal: request.signal,
            shutdown: this.#shutdown.signal,
            revoked: follower.signal,
            release: () => undefined,
          });
          return;
        }
      }
      if (request.follow) {
        yield* this.#engine.follow(id, {
          selector,
          cursor,
          signal,
          progress: request.progress === true,
          recorded,
        });
      } else yield* this.#readToEnd(recorded, selector, cursor, signal, request.spans === true);
      // Cut short, not ended: a read that stopped early must not look whole to its client.
      if (follower.signal.aborted && !request.signal?.aborted)
        throw streamEnded(follower.signal, follower.user);
    } finally {
      stop.dispose();
      follower.release();
    }
  }

  async *#readToEnd(
    recorded: Job,
    selector: OutputSelector,
    from: number,
    signal: AbortSignal,
    spans: boolean,
  ): AsyncGenerator<FollowEvent | SpansEvent> {
    // One reader for the whole response: the job is looked up and its files opened once, and
    // the view ends where it ended when the reader opened (a later byte needs a follow).
    const reader = await this.#engine.openReader(recorded.id, selector, recorded);
    try {
      yield* spans && reader.sealed
        ? spansToEnd(reader, from, signal)
        : pagesToEnd(reader, from, signal, this.#pages);
    } finally {
      await reader.close();
    }
    if (!signal.aborted) yield { type: 'end', job: await this.#engine.get(recorded.id) };
  }
}

/**
 * A sealed view to its end as spans: nothing is read here, the consumer has the kernel copy each
 * span from the reader's files (which stay open until it asks for the next event).
 */
async function* spansToEnd(
  reader: OutputReader,
  from: number,
  signal: AbortSignal,
): AsyncGenerator<SpansEvent> {
  let cursor = from;
  while (cursor < reader.end && !signal.aborted) {
    const read = await reader.spans(cursor, SPAN_BYTES);
    if (read.spans.length === 0) return;
    cursor = read.cursor;
    yield { type: 'spans', spans: read.spans };
  }
}

/**
 * A view to its end as pages: the next page is read while the consumer writes this one, so disk
 * and socket overlap. Each page is read into a pooled buffer, which the consumer releases once
 * written. Ends only once a page read ahead has settled: the caller closes the files after it.
 */
async function* pagesToEnd(
  reader: OutputReader,
  from: number,
  signal: AbortSignal,
  pages: PagePool,
): AsyncGenerator<FollowEvent> {
  const readPage = (cursor: number): Promise<PooledRead> => {
    const page = pages.take();
    return reader.read(cursor, PAGE_BYTES, page).then(
      (read) => ({ read, page }),
      (err: unknown) => {
        pages.give(page);
        throw err;
      },
    );
  };
  let next: Promise<PooledRead> | undefined;
  try {
    if (from < reader.end) next = readPage(from);
    while (next && !signal.aborted) {
      const { read, page } = await next;
      next = undefined;
      if (read.events.length === 0) {
        pages.give(page);
        break;
      }
      if (read.cursor < reader.end) {
        next = readPage(read.cursor);
        // Its failure is thrown by the await above on the next turn, not reported as unhandled meanwhile.
        next.catch(() => undefined);
      }
      yield { type: 'output', events: read.events, release: () => pages.give(page) };
    }
  } finally {
    // A page read ahead for a consumer that left is dropped, but it must end before the files
    // close; its bytes were never handed out, so its page goes back at once.
    const ahead = await next?.catch(() => undefined);
    if (ahead) pages.give(ahead.page);
  }
}

/** A page read to the end, and the pooled buffer its bytes lie in. */
interface PooledRead {
  readonly read: OutputRead;
  readonly page: Buffer;
}

/** Admins and users change things; a viewer reads only. */
function requireWriter(who: Principal, what: string): void {
  if (who.role === 'viewer') {
    throw new JobworkerError('FORBIDDEN', `A viewer reads jobs and queues only: it may not ${what}`);
  }
}

function maySee(who: Principal, job: Job): boolean {
  return seesEveryJob(who.role) || job.owner === who.user;
}

function checkId(id: string): void {
  if (!isJobId(id)) {
    throw ValidationError.expected(
      'id',
      'a job id (a UUIDv7 such as 0190f3a2-7c4e-7d1a-9b2c-3f4e5a6b7c8d)',
      id,
    );
  }
}

/**
 * Under a forced isolation a non-admin may ask for more, never for less: a field that turns off
 * what is forced is refused by name. (Malformed values are left to the spec check: 400.)
 */
function refuseLessIsolation(asked: unknown, forced: JobIsolation): void {
  if (typeof asked !== 'object' || asked === null) return;
  const { pid, network, mount } = asked as {
    pid?: unknown;
    network?: unknown;
    mount?: { privateTmp?: unknown };
  };
  const refuse = (field: string, what: string) => {
    throw new ValidationError(
      field,
      `This server forces isolation on non-admin users: ${what} is for admins only`,
      'FORBIDDEN',
    );
  };
  if (forced.pid && pid === false) refuse('isolation.pid', '`pid: false`');
  if (forced.network === 'none' && network === 'host') refuse('isolation.network', '`network: "host"`');
  if (forced.mount?.privateTmp && typeof mount === 'object' && mount?.privateTmp === false) {
    refuse('isolation.mount.privateTmp', '`privateTmp: false`');
  }
}
