import { type Kysely, sql, type Transaction, type Updateable } from 'kysely';
import { type Clock, type ClockTimer, systemClock } from '../../core/clock.ts';
import { ClaimLostError, NotFoundError, QueueFullError, ValidationError } from '../../core/errors.ts';
import {
  dedupeScopeOf,
  type Job,
  type JobProgress,
  type JobStatus,
  type ProcessIdentity,
  type StopRequest,
} from '../../core/job.ts';
import { assertTransition, TRANSITIONS } from '../../core/states.ts';
import { AdmissionPreview, previewed } from '../admission-preview.ts';
import { admittedAs, dependencyVerdict, latestAttempts, settledColumns } from '../dependency-verdict.ts';
import {
  type AdmitOptions,
  ForgottenQueueListeners,
  type QueuesForgottenListener,
  queueLimitError,
} from '../forgotten-queues.ts';
import { jobToRow, progressToText, rowToJob, toMillis } from '../job-row.ts';
import type {
  Admission,
  DeleteFinishedQuery,
  FinishedBound,
  JobFinish,
  JobListQuery,
  JobPage,
  JobStore,
  QueueDefaults,
  QueueSettings,
  QueueState,
  RetentionLimits,
  TakenOver,
} from '../job-store.ts';
import {
  type CurrentState,
  cancelQueuedDecision,
  finishDecision,
  pausedDecision,
  releaseClaimDecision,
  resumedDecision,
  stopForcedDecision,
  stopRequestedDecision,
} from '../job-transitions.ts';
import { limitColumns, limitsOfColumns } from '../limit-columns.ts';
import { checkListQuery, pageOf } from '../list-query.ts';
import { parseIsolation, queueDefaultsOf } from '../queue-row.ts';
import type { JobRow, QueueRow, StoreSchema } from '../schema.ts';
import { migratePostgres } from './migrate-postgres.ts';
import {
  newSessionTag,
  openPostgres,
  type PostgresPoolOptions,
  redactPostgresUrl,
  sessionName,
  sessionTimeouts,
} from './open-postgres.ts';
import {
  claimStatement,
  countActiveQuery,
  nextRunAtQuery,
  queueStatesStatement,
  readyQueuesStatement,
} from './pg-dispatch-queries.ts';
import { pgListActiveQuery, pgListJobsQuery } from './pg-list-jobs-query.ts';
import { type NodeLockOptions, PgNodeLock } from './pg-node-lock.ts';
import { PgNodeStore } from './pg-node-store.ts';
import { PG_NOW_MS, pgNowMs } from './pg-now.ts';
import { PgPoolAccounts } from './pg-pool-accounts.ts';
import { pgDeleteFinished, pgDeleteJob, pgRetentionBound } from './pg-retention.ts';
import { isUniqueViolation, pgStoreError } from './pg-storage-error.ts';
import { PgUserStore } from './pg-user-store.ts';
import { PgWatch, type PgWatchOptions, type StoreWakeUpListener, WORK_CHANNEL } from './pg-watch.ts';
import { PgWebhookStore } from './pg-webhook-store.ts';

export type { StoreWakeUp, StoreWakeUpListener } from './pg-watch.ts';

/** How a `PgJobStore` is opened: its pool, and the clock that times `watch`'s reconnections. */
export interface PgJobStoreOptions
  extends Omit<PostgresPoolOptions, 'applicationName' | 'idleInTransactionMs' | 'lockTimeoutMs'> {
  /** Default: the system clock. */
  readonly clock?: Clock;
  /**
   * The node this store serves (`serve --node-id`): its sessions are named after it and this
   * server (`sessionName`, recorded at its join), so that a node that declares it lost can end
   * them. Default: sessions named `jobworker`, which no sweep ends.
   */
  readonly nodeId?: string;
  /**
   * The cluster's node timeout (`serve --node-timeout`, default 30 s), which the sessions'
   * timeouts stay below (`sessionTimeouts`).
   */
  readonly nodeTimeoutMs?: number;
  /** How long a claim waits for its queue's row (`CLAIM_LOCK_WAIT_MS`, the default). */
  readonly claimLockWaitMs?: number;
}

/** `serve --node-timeout`'s default, for a store opened without one. */
const DEFAULT_NODE_TIMEOUT_MS = 30_000;

/**
 * How long a claim waits for its queue's row, which another session holds, before it passes the
 * queue over (`claimReady`). Others hold it for milliseconds: a claim, an admission under the
 * queue's `maxWaiting` (which holds it while it counts and inserts), a change of its settings; a
 * claim that skipped a row held even that long would find nothing nearly every time on a queue
 * that takes submissions steadily, and its job would wait for the retry below. A node frozen in the
 * middle of one holds it until its session is ended: this bounds what that costs a dispatch pass.
 */
export const CLAIM_LOCK_WAIT_MS = 200;

/**
 * How soon a queue whose row another session held past `CLAIM_LOCK_WAIT_MS` at a claim is looked
 * at again (on the clock): a frozen node holds it until its session is ended (`sessionTimeouts`),
 * and meanwhile each look costs the wait.
 */
export const SKIPPED_QUEUE_RETRY_MS = 1000;

type Db = Kysely<StoreSchema> | Transaction<StoreSchema>;

/** The active statuses: a job in one holds its dedupe key. */
const ACTIVE = ['queued', 'running', 'paused'] as const;

/** Connections of the nodes' pool: a sweep's held declaration, a heartbeat, a listing. */
const NODES_POOL_SIZE = 3;

/** PostgreSQL's `lock_not_available`: a lock waited for past `lock_timeout`. */
const LOCK_NOT_AVAILABLE = '55P03';

/** How many times an admission that lost a dedupe race is read again (it then sees the winner). */
const DEDUPE_RACE_RETRIES = 3;

/**
 * The job store on PostgreSQL, shared by every node of a cluster. Each state change is one
 * transaction that locks the job's row (`FOR UPDATE`) before checking the transition, or one
 * guarded `UPDATE ... RETURNING` whose `where` is the check, so that of two nodes racing, one
 * wins and the other sees the new status. Claims lock the queue's row, so a queue's concurrency
 * holds across nodes; dedupe keys rest on a unique partial index.
 */
export class PgJobStore implements JobStore {
  readonly #db: Kysely<StoreSchema>;
  readonly #url: string;
  readonly #clock: Clock;
  readonly #watches = new Set<PgWatch>();
  readonly #nodeLocks = new Set<PgNodeLock>();
  /** Per queue passed over by a claim (its row held elsewhere): the timer that wakes a look again. */
  readonly #skipped = new Map<string, ClockTimer>();
  /** The node it serves, when told: what its sessions are named after. */
  readonly #nodeId: string | undefined;
  /** `PgJobStoreOptions.claimLockWaitMs`. */
  readonly #claimLockWaitMs: number;
  /** Told of the queues each deletion through this store forgot (`onQueuesForgotten`). */
  readonly #forgottenQueues = new ForgottenQueueListeners();

  /** Users, tokens and the audit trail, in the same database and pool. */
  readonly users: PgUserStore;
  /** The uids of users' pool accounts, one for every node (docs/cluster.md, "Job accounts"). */
  readonly poolAccounts: PgPoolAccounts;
  /** Webhooks, their outbox (filled by triggers on `jobs`) and deliveries. */
  readonly webhooks: PgWebhookStore;
  /** The nodes of the cluster (docs/cluster.md), on a pool of their own. */
  readonly nodes: PgNodeStore;
  /**
   * What the sessions of its pools are called (`pg_stat_activity.application_name`), for the node
   * it serves: `sessionName(nodeId, tag)`, its tag drawn at `open`. Undefined for no node.
   */
  readonly sessionName: string | undefined;
  /**
   * The nodes' pool: a heartbeat never waits for a connection behind this node's own queries, and
   * a sweep's declaration holds one while its jobs are decided on the main pool. Connections are
   * opened only when used (a store that is no cluster's node opens none).
   */
  readonly #nodesDb: Kysely<StoreSchema>;

  private constructor(
    db: Kysely<StoreSchema>,
    url: string,
    clock: Clock,
    nodeId: string | undefined,
    claimLockWaitMs: number,
    session: { applicationName?: string; idleInTransactionMs: number },
  ) {
    this.#db = db;
    this.#url = url;
    this.#clock = clock;
    this.#nodeId = nodeId;
    this.#claimLockWaitMs = claimLockWaitMs;
    this.sessionName = session.applicationName;
    this.users = new PgUserStore(db, url);
    this.webhooks = new PgWebhookStore(db, url);
    this.poolAccounts = new PgPoolAccounts(db);
    // No lock timeout here: a node's beat or join waits on purpose while a sweep decides its jobs.
    this.#nodesDb = openPostgres(url, { max: NODES_POOL_SIZE, ...session });
    this.nodes = new PgNodeStore(
      this.#nodesDb,
      db,
      nodeId === undefined || session.applicationName === undefined
        ? undefined
        : { id: nodeId, sessionName: session.applicationName },
    );
  }

  /**
   * Opens a pool on the database at `url`, brings its schema up to date (under an advisory lock,
   * so nodes starting together migrate once) and returns the store. An unreachable database:
   * `PostgresUnavailableError` naming it, password redacted.
   */
  static async open(url: string, options: PgJobStoreOptions = {}): Promise<PgJobStore> {
    const {
      clock = systemClock,
      nodeId,
      nodeTimeoutMs = DEFAULT_NODE_TIMEOUT_MS,
      claimLockWaitMs = CLAIM_LOCK_WAIT_MS,
      ...pool
    } = options;
    // Zero would be no bound at all (PostgreSQL's `lock_timeout = 0`).
    if (!Number.isInteger(claimLockWaitMs) || claimLockWaitMs <= 0) {
      throw ValidationError.expected('claimLockWaitMs', 'a positive integer (ms)', claimLockWaitMs);
    }
    // A tag of this server's own: a sweep ends the sessions of the server that last joined as the
    // node, not those of this one, should it start under an id a peer is sweeping.
    const named = nodeId === undefined ? {} : { applicationName: sessionName(nodeId, newSessionTag()) };
    // Migrated on a connection of its own, without the session timeouts: a node waits for another's
    // migration (its advisory lock) as long as that takes, and a migration's DDL for its locks.
    const migrating = openPostgres(url, { ...pool, ...named, max: 1 });
    try {
      await migratePostgres(migrating, { database: redactPostgresUrl(url) });
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause ?? error;
      const mapped = pgStoreError(cause, url);
      throw mapped === cause ? error : mapped;
    } finally {
      await migrating.destroy().catch(() => {});
    }
    const timeouts = sessionTimeouts(nodeTimeoutMs);
    const db = openPostgres(url, { ...pool, ...named, ...timeouts });
    return new PgJobStore(db, url, clock, nodeId, claimLockWaitMs, {
      ...named,
      idleInTransactionMs: timeouts.idleInTransactionMs,
    });
  }

  /**
   * Holds this node's id for as long as it runs (`PgNodeLock`): a second server started with the
   * same id is refused. Resolves with what lets it go; `close` lets go of any still held.
   */
  async holdNodeId(id: string, options: Omit<NodeLockOptions, 'clock'>): Promise<() => Promise<void>> {
    let lock: PgNodeLock | undefined;
    try {
      lock = await PgNodeLock.acquire(this.#url, id, { ...options, clock: this.#clock }, (made) => {
        lock = made;
        this.#nodeLocks.add(made);
      });
    } catch (error) {
      if (lock) this.#nodeLocks.delete(lock);
      throw error instanceof ValidationError ? error : pgStoreError(error, this.#url);
    }
    const held = lock;
    return async () => {
      this.#nodeLocks.delete(held);
      await held.release();
    };
  }

  /**
   * Calls `listener` on each wake-up of the cluster (see `StoreWakeUp`) until the returned
   * function is called. Holds one connection of its own with LISTEN, reopened with backoff if it
   * drops. Rejects if the first connection cannot be made.
   */
  async watch(listener: StoreWakeUpListener, options: PgWatchOptions = {}): Promise<() => Promise<void>> {
    const watch = new PgWatch(this.#url, this.#clock, listener, {
      // Never a name `sessionName` gives (those begin `jobworker `): a sweep leaves it alone.
      ...(this.#nodeId === undefined
        ? {}
        : { applicationName: `jobworker-listen ${this.#nodeId}`.slice(0, 63) }),
      ...options,
    });
    try {
      await watch.start();
    } catch (error) {
      throw pgStoreError(error, this.#url);
    }
    this.#watches.add(watch);
    return async () => {
      this.#watches.delete(watch);
      await watch.close();
    };
  }

  /** Runs `work`, reporting a full disk or a lost database as such (see `pgStoreError`). */
  async #run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw pgStoreError(error, this.#url);
    }
  }

  async insertJob(job: Job): Promise<void> {
    return this.#run(() => this.#db.transaction().execute((trx) => insertRow(trx, job)));
  }

  admitJob(job: Job, now: Date, options: AdmitOptions = {}): Promise<Admission> {
    return this.#admit(job, now, options.maxQueues ?? null, false);
  }

  previewAdmission(job: Job, now: Date, options: AdmitOptions = {}): Promise<Admission> {
    return this.#admit(job, now, options.maxQueues ?? null, true);
  }

  /** `admitJob`; with `preview`, its transaction rolled back (`previewAdmission`). */
  async #admit(job: Job, now: Date, maxQueues: number | null, preview: boolean): Promise<Admission> {
    const admit = async (trx: Transaction<StoreSchema>): Promise<Admission> => {
      const admission = await admitIn(trx, job, now, maxQueues);
      if (preview) throw new AdmissionPreview(admission);
      return admission;
    };
    return this.#run(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const work = this.#db.transaction().execute(admit);
          return await (preview ? previewed(work) : work);
        } catch (error) {
          // Another node admitted the same key between our look and our insert: look again, in
          // a new transaction, which now sees the winner (unless it ended meanwhile).
          if (!isUniqueViolation(error, 'jobs_dedupe') || attempt >= DEDUPE_RACE_RETRIES) throw error;
        }
      }
    });
  }

  /**
   * One transaction: the queue's row locked (so claims of the queue, from every node, take turns),
   * the slots in use counted, and at most the free ones claimed (`claimStatement`). A queue whose
   * row another session holds for longer than `CLAIM_LOCK_WAIT_MS` is passed over (see
   * `#passedOver`). `for no key update`: admissions hold the row `for key share` (`holdQueue`),
   * which it does not wait for.
   */
  async claimReady(queue: string, node: string, max: number): Promise<Job[]> {
    if (max <= 0) return [];
    return this.#run(async () => {
      try {
        return await this.#db.transaction().execute(async (trx) => {
          // A short wait rather than none (`SKIP LOCKED`): an admission under the queue's
          // `maxWaiting` holds the row for its whole transaction, and a claim that skipped it lost
          // to a steady stream of them nearly every time. Rather than the pool's own bound (two
          // thirds of the node timeout): a node frozen holding the row must not stop this node's
          // dispatch pass, and so every queue, for that long.
          await sql`select set_config('lock_timeout', ${`${this.#claimLockWaitMs}ms`}, true)`.execute(trx);
          const settingsOf = () =>
            trx
              .selectFrom('queues')
              .select(['concurrency', 'paused'])
              .where('name', '=', queue)
              .forNoKeyUpdate()
              .executeTakeFirst();
          let settings = await settingsOf();
          if (settings === undefined) {
            // No row: no job ever named it (each one that does makes its row), or one of a node of
            // the version before queues were forgotten did while a newer node forgot the row
            // (`readyQueuesStatement`). Made again for such a job, which would never start else.
            const waiting = await trx
              .selectFrom('jobs')
              .select('id')
              .where('queue', '=', queue)
              .where('status', '=', 'queued')
              .limit(1)
              .executeTakeFirst();
            if (waiting === undefined) return [];
            await trx
              .insertInto('queues')
              .values({ name: queue, paused: 0 })
              .onConflict((oc) => oc.column('name').doNothing())
              .execute();
            settings = await settingsOf();
          }
          if (settings === undefined || settings.paused === 1) return [];
          const free =
            settings.concurrency === null
              ? max
              : Math.min(max, settings.concurrency - (await countActiveIn(trx, queue)));
          if (free <= 0) return [];
          const { rows } = await claimStatement(queue, node, free).execute(trx);
          // The claim order is the start order: priority, then arrival.
          return rows
            .map(rowToJob)
            .sort((a, b) => b.spec.priority - a.spec.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        });
      } catch (error) {
        if ((error as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw error;
        this.#passedOver(queue);
        return [];
      }
    });
  }

  async listStarting(node: string): Promise<Job[]> {
    return this.#run(async () => {
      const { rows } = await this.#db.executeQuery(pgListActiveQuery(this.#db, node, 'starting'));
      return rows.map(rowToJob);
    });
  }

  async releaseClaim(id: string, node: string): Promise<Job> {
    return this.#change(id, releaseClaimDecision(id, node));
  }

  /**
   * Due by both `now` (this node's clock) and the database's: a node whose clock runs ahead starts
   * no job before its time, and one whose clock is behind leaves it to a node that is not (any
   * node's pass promotes every due job).
   */
  async promoteDue(now: Date): Promise<number> {
    return this.#run(async () => {
      const result = await this.#db
        .updateTable('jobs')
        .set({ hold: null })
        .where(sql<boolean>`status = 'queued' and hold = 'delay'`)
        .where('run_at', '<=', sql<number>`least(${toMillis('now', now)}::bigint, ${PG_NOW_MS})`)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  /**
   * The earliest `runAt` of a delayed job, as this node's clock will read it when it is due on the
   * database's too (see `promoteDue`): later by as much as this node's clock runs ahead, so that its
   * dispatcher's timer rings once, not over and over until the database's clock catches up.
   */
  async nextRunAt(): Promise<Date | null> {
    return this.#run(async () => {
      // Read before the query: on clocks that agree, the database's reading is the later one.
      const here = this.#clock.now().getTime();
      const row = await this.#db
        .selectFrom(nextRunAtQuery(this.#db).as('next'))
        .select(['next.run_at', PG_NOW_MS.as('db_now')])
        .executeTakeFirst();
      if (row?.run_at == null) return null;
      return new Date(row.run_at + Math.max(0, here - Number(row.db_now)));
    });
  }

  async cancelQueued(id: string, stop: StopRequest, reason: string): Promise<Job> {
    return this.#change(id, cancelQueuedDecision(id, stop, reason));
  }

  async markRetried(id: string, finish: JobFinish, next: Job): Promise<Job> {
    return this.#run(() =>
      this.#db.transaction().execute(async (trx) => {
        const finished = await finishIn(trx, id, finish, next);
        if (finished.retriedAs !== next.id) return finished;
        await insertRow(trx, next);
        await trx.updateTable('job_deps').set({ dep_id: next.id }).where('dep_id', '=', id).execute();
        return finished;
      }),
    );
  }

  async settleDependents(id: string, now: Date): Promise<Job[]> {
    return this.#run(async () => {
      // Most jobs have no dependents: one indexed read, no transaction. A dependent admitted
      // after this read locked this job first, so it saw it ended and was never held.
      const any = await this.#db
        .selectFrom('job_deps')
        .select(sql.lit(1).as('one'))
        .where('dep_id', '=', id)
        .limit(1)
        .executeTakeFirst();
      if (any === undefined) return [];
      return this.#db.transaction().execute((trx) => settle(trx, [id], now));
    });
  }

  async settleAll(now: Date): Promise<Job[]> {
    return this.#run(() =>
      this.#db.transaction().execute(async (trx) => {
        const ended = await trx
          .selectFrom('job_deps as d')
          .innerJoin('jobs as w', 'w.id', 'd.job_id')
          .innerJoin('jobs as dep', 'dep.id', 'd.dep_id')
          .select('d.dep_id')
          .distinct()
          .where('w.status', '=', 'queued')
          .where('w.hold', '=', 'after')
          .where('dep.status', 'not in', ACTIVE)
          .where('dep.retried_as', 'is', null)
          .orderBy('d.dep_id')
          .execute();
        return settle(
          trx,
          ended.map((r) => r.dep_id),
          now,
        );
      }),
    );
  }

  async markPaused(id: string, at: Date): Promise<Job> {
    return this.#change(id, pausedDecision(id, at));
  }

  async markResumed(id: string): Promise<Job> {
    return this.#change(id, resumedDecision(id));
  }

  async getQueue(name: string): Promise<QueueState> {
    return this.#run(async () => queueState(this.#db, name, await queueRow(this.#db, name)));
  }

  async queueDefaults(name: string): Promise<QueueDefaults> {
    return this.#run(async () => queueDefaultsOf(await queueRow(this.#db, name)));
  }

  async putQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueState> {
    return this.#run(() =>
      this.#db.transaction().execute(async (trx) => {
        // Create-then-lock, so two nodes changing different settings at once both keep theirs. An
        // explicit creation: the limit of queues is for those a submission makes.
        const current = await holdQueue(trx, name, { maxQueues: null, lock: 'no key update' });
        const row: QueueRow = {
          name,
          concurrency: settings.concurrency !== undefined ? settings.concurrency : current.concurrency,
          max_waiting: settings.maxWaiting !== undefined ? settings.maxWaiting : current.max_waiting,
          paused: settings.paused !== undefined ? (settings.paused ? 1 : 0) : current.paused,
          ...limitColumns({
            defaults: settings.defaultLimits ?? limitsOfColumns(current).defaults,
            maxima: settings.maxLimits ?? limitsOfColumns(current).maxima,
          }),
          isolation:
            settings.isolation !== undefined
              ? settings.isolation && JSON.stringify(settings.isolation)
              : current.isolation,
        };
        const { name: _, ...changes } = row;
        await trx.updateTable('queues').set(changes).where('name', '=', name).execute();
        // A resume, or a higher limit, may let waiting jobs start, on any node: the node that made
        // the change may take none (draining, or at its --max-running), and no job event would
        // tell the others. Sent at commit, on the channel the jobs' own wake-ups use.
        const raised =
          current.concurrency !== null && (row.concurrency === null || row.concurrency > current.concurrency);
        if (row.paused === 0 && (current.paused === 1 || raised)) {
          await sql`select pg_notify(${WORK_CHANNEL}, ${name})`.execute(trx);
        }
        return queueState(trx, name, row);
      }),
    );
  }

  async listQueues(): Promise<QueueState[]> {
    return this.#run(async () => {
      const { rows } = await queueStatesStatement().execute(this.#db);
      return rows.map((row) => stateOf(row.name, row, row));
    });
  }

  async listReadyQueues(): Promise<(QueueSettings & { readonly name: string })[]> {
    return this.#run(async () => {
      const { rows } = await readyQueuesStatement().execute(this.#db);
      return rows.map((r) => ({
        name: r.name,
        concurrency: r.concurrency,
        maxWaiting: r.max_waiting,
        paused: r.paused === 1,
        defaultLimits: limitsOfColumns(r).defaults,
        maxLimits: limitsOfColumns(r).maxima,
        isolation: parseIsolation(r.isolation),
      }));
    });
  }

  async countActive(queue: string): Promise<number> {
    return this.#run(() => countActiveIn(this.#db, queue));
  }

  async getJob(id: string): Promise<Job | undefined> {
    // No cache of finished jobs as in SQLite: another node may delete one at any time.
    return this.#run(async () => {
      const row = await this.#db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? undefined : rowToJob(row);
    });
  }

  async listJobs(query: JobListQuery): Promise<JobPage> {
    const checked = checkListQuery(query);
    return this.#run(async () => {
      const { rows } = await this.#db.executeQuery(pgListJobsQuery(this.#db, checked));
      return pageOf(rows, checked.limit, rowToJob);
    });
  }

  async markStarted(id: string, process: ProcessIdentity, startedAt: Date, claimedBy?: string): Promise<Job> {
    const changes = {
      status: 'running',
      hold: null,
      process: JSON.stringify(process),
      started_at: toMillis('startedAt', startedAt),
    } as const;
    return this.#run(async () => {
      // The common case as one guarded statement: the legal transition is its `where`.
      const row = await this.#db
        .updateTable('jobs')
        .set(changes)
        .where('id', '=', id)
        .where('status', 'in', fromStatuses('running'))
        // A claim another node gave back (this one was declared lost) is not this node's to start.
        .$if(claimedBy !== undefined, (q) => q.where('node', '=', claimedBy!).where('hold', '=', 'starting'))
        .returningAll()
        .executeTakeFirst();
      if (row !== undefined) return rowToJob(row);
      // Not a legal start (or no such job): the general path names the reason.
      return this.#db.transaction().execute(async (trx) => {
        if (claimedBy !== undefined) {
          // The guarded update found no claim of this node: whatever the job is now (queued again,
          // claimed, running or paused on another node, ended), it is not this node's to start.
          const current = await trx.selectFrom('jobs').select('id').where('id', '=', id).executeTakeFirst();
          if (current === undefined) throw new NotFoundError(id);
          throw new ClaimLostError(id, claimedBy);
        }
        return changeIn(trx, id, (current) => {
          assertTransition(id, current.status, 'running');
          return changes;
        });
      });
    });
  }

  async markStopRequested(id: string, stop: StopRequest): Promise<Job> {
    return this.#change(id, stopRequestedDecision(id, stop));
  }

  async markStopForced(id: string): Promise<Job> {
    return this.#change(id, stopForcedDecision(id));
  }

  async markFinished(id: string, finish: JobFinish): Promise<Job> {
    return this.#run(() => this.#db.transaction().execute((trx) => finishIn(trx, id, finish)));
  }

  async setProgress(id: string, progress: JobProgress): Promise<Job | undefined> {
    const text = progressToText(progress);
    return this.#run(async () => {
      const row = await this.#db
        .updateTable('jobs')
        .set({ progress: text })
        .where('id', '=', id)
        .where('status', 'in', ACTIVE)
        .returningAll()
        .executeTakeFirst();
      return row === undefined ? undefined : rowToJob(row);
    });
  }

  async getResult(id: string): Promise<string | undefined> {
    return this.#run(async () => {
      const row = await this.#db
        .selectFrom('job_results')
        .select('json')
        .where('job_id', '=', id)
        .executeTakeFirst();
      return row?.json;
    });
  }

  async listRunning(node: string): Promise<Job[]> {
    return this.#run(async () => {
      const { rows } = await this.#db.executeQuery(pgListActiveQuery(this.#db, node, 'running'));
      return rows.map(rowToJob);
    });
  }

  /**
   * Nothing: the nodes of a cluster share this store, each running its own jobs, and a dead node's
   * are the lost-node sweep's (see `JobStore.takeOverJobs`).
   */
  async takeOverJobs(_node: string): Promise<TakenOver[]> {
    return [];
  }

  async deleteJob(id: string): Promise<Job> {
    const { deleted, forgotten } = await this.#run(() => pgDeleteJob(this.#db, id));
    this.#forgottenQueues.tell(forgotten);
    return deleted;
  }

  async retentionBound(limits: RetentionLimits): Promise<FinishedBound | null> {
    return this.#run(() => pgRetentionBound(this.#db, limits));
  }

  async deleteFinished(query: DeleteFinishedQuery): Promise<string[]> {
    const { deleted, forgotten } = await this.#run(() => pgDeleteFinished(this.#db, query));
    this.#forgottenQueues.tell(forgotten);
    return deleted;
  }

  onQueuesForgotten(listener: QueuesForgottenListener): () => void {
    return this.#forgottenQueues.add(listener);
  }

  async listDirsToRemove(limit: number, node?: string): Promise<string[]> {
    return this.#run(async () => {
      const rows = await this.#db
        .selectFrom('job_dirs_to_remove')
        .select('id')
        .$if(node !== undefined, (q) => q.where('node', '=', node!))
        .orderBy('id')
        .limit(limit)
        .execute();
      return rows.map((r) => r.id);
    });
  }

  async forgetDirsRemoved(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    return this.#run(async () => {
      await this.#db.deleteFrom('job_dirs_to_remove').where('id', 'in', ids).execute();
    });
  }

  releaseMemory(): Promise<void> {
    // Nothing to give: PostgreSQL caches pages in its own server, and the pool ends the connections
    // that stay idle by itself.
    return Promise.resolve();
  }

  /**
   * A claim passed over `queue`, whose row another session held past `CLAIM_LOCK_WAIT_MS`: a node
   * that froze (or lost its host) in the middle of a claim, an admission under the queue's
   * `maxWaiting` or a change of its settings, holding the row until its session is ended
   * (`sessionTimeouts`, and the sweep that declares it lost ends its sessions at once), or one
   * much slower than usual. Waiting on for that row would stop this node's dispatch pass, and so
   * every queue, behind one frozen peer. Nothing tells this node when the row is free (a claim
   * sends no wake-up; an ended session's undone transaction sends nothing), so its dispatcher is
   * woken for the queue after a short while on the clock, as the store's own wake-ups wake it, and
   * passes over it again while it is still held.
   */
  #passedOver(queue: string): void {
    if (this.#skipped.has(queue)) return;
    this.#skipped.set(
      queue,
      this.#clock.setTimer(() => {
        this.#skipped.delete(queue);
        for (const watch of this.#watches) watch.tell({ channel: 'work', payload: queue });
      }, SKIPPED_QUEUE_RETRY_MS),
    );
  }

  /** Ends every `watch` and the pool. */
  async close(): Promise<void> {
    for (const timer of this.#skipped.values()) timer.clear();
    this.#skipped.clear();
    for (const watch of [...this.#watches]) await watch.close();
    this.#watches.clear();
    for (const lock of [...this.#nodeLocks]) await lock.release();
    this.#nodeLocks.clear();
    await this.#nodesDb.destroy();
    await this.#db.destroy();
  }

  /**
   * One state change as one transaction: the job's row read `FOR UPDATE` (a second node changing
   * it waits, then reads the new state), `decide` checks it (it throws to refuse) and returns the
   * columns to change, or null to change nothing.
   */
  #change(id: string, decide: (current: CurrentState) => Updateable<JobRow> | null): Promise<Job> {
    return this.#run(() => this.#db.transaction().execute((trx) => changeIn(trx, id, decide)));
  }
}

/** The statuses a job may move to `to` from. */
function fromStatuses(to: JobStatus): JobStatus[] {
  return (Object.keys(TRANSITIONS) as JobStatus[]).filter((status) =>
    (TRANSITIONS[status] as readonly JobStatus[]).includes(to),
  );
}

/** The end of a job (see `JobStore.markFinished`), and its retry as `next` when `finishDecision` takes it, in `trx`. */
async function finishIn(
  trx: Transaction<StoreSchema>,
  id: string,
  finish: JobFinish,
  next?: Job,
): Promise<Job> {
  const finished = await changeIn(trx, id, finishDecision(id, finish, next));
  const { result } = finish;
  if (result !== undefined && 'json' in result) {
    await trx
      .insertInto('job_results')
      .values({ job_id: id, json: result.json })
      .onConflict((oc) => oc.column('job_id').doUpdateSet({ json: result.json }))
      .execute();
  }
  return finished;
}

/** One state change inside a transaction, on the row locked `FOR UPDATE`. */
async function changeIn(
  trx: Transaction<StoreSchema>,
  id: string,
  decide: (current: CurrentState) => Updateable<JobRow> | null,
): Promise<Job> {
  const current = await trx
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  if (current === undefined) throw new NotFoundError(id);
  const changes = decide(current);
  if (changes === null) return rowToJob(current);
  const row = await trx
    .updateTable('jobs')
    .set(changes)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return rowToJob(row);
}

/**
 * The admission of one job (see `JobStore.admitJob`) inside `trx`. Across nodes: the dedupe key
 * rests on the unique index `jobs_dedupe` (the loser of a race gets 23505 and reads again); a
 * queue's `maxWaiting` is counted with its row locked; each dependency is locked `FOR SHARE`, so
 * its end (which updates it) waits for this admission, and the settling that follows sees the edge.
 */
async function admitIn(
  trx: Transaction<StoreSchema>,
  job: Job,
  now: Date,
  maxQueues: number | null,
): Promise<Admission> {
  const scope = dedupeScopeOf(job);
  if (job.spec.dedupeKey !== null && scope !== null) {
    const existing = await trx
      .selectFrom('jobs')
      .selectAll()
      .where('dedupe_scope', '=', scope)
      .where('dedupe_key', '=', job.spec.dedupeKey)
      .where(sql<boolean>`dedupe_key is not null and status in ('queued', 'running', 'paused')`)
      .executeTakeFirst();
    if (existing) return { admitted: false, existing: rowToJob(existing) };
  }
  const queue = await holdQueue(trx, job.spec.queue, { maxQueues, lock: 'key share' });
  if (queue.max_waiting !== null) {
    // Admissions to a queue with a `maxWaiting` take turns, each counting what the one before
    // committed; `no key update` leaves the others' `key share` (and its own) as they are.
    const locked = await trx
      .selectFrom('queues')
      .select('max_waiting')
      .where('name', '=', job.spec.queue)
      .forNoKeyUpdate()
      .executeTakeFirstOrThrow();
    const max = locked.max_waiting;
    if (max !== null) {
      const { n } = await trx
        .selectFrom(
          trx
            .selectFrom('jobs')
            .select(sql.lit(1).as('one'))
            .where('queue', '=', job.spec.queue)
            .where('status', '=', sql.lit('queued'))
            // Counted as the queue's `waiting` is: jobs being started hold a slot instead.
            .where(sql<boolean>`hold is distinct from 'starting'`)
            .limit(max)
            .as('w'),
        )
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      if (Number(n) >= max) throw new QueueFullError(job.spec.queue, max);
    }
  }

  // Each dependency, followed along its retries to its latest attempt, locked.
  const deps = (await latestAttempts(job.spec.after, (id) => lockShared(trx, id))).map(rowToJob);
  const admitted = admittedAs(job, dependencyVerdict(deps), now);
  // Ready by this node's clock, but maybe not by the database's (see `PgJobStore.promoteDue`).
  const stored =
    admitted.hold === null &&
    admitted.status === 'queued' &&
    job.runAt !== null &&
    job.runAt.getTime() > (await pgNowMs(trx))
      ? { ...admitted, hold: 'delay' as const }
      : admitted;
  await insertRow(trx, stored, true);
  if (stored.status === 'queued' && deps.length > 0) {
    await trx
      .insertInto('job_deps')
      .values(deps.map((dep) => ({ job_id: job.id, dep_id: dep.id })))
      .onConflict((oc) => oc.columns(['job_id', 'dep_id']).doNothing())
      .execute();
  }
  return { admitted: true, job: stored };
}

function lockShared(trx: Transaction<StoreSchema>, id: string): Promise<JobRow | undefined> {
  return trx.selectFrom('jobs').selectAll().where('id', '=', id).forShare().executeTakeFirst();
}

/** `queueHeld`: the caller holds the job's queue row already (`holdQueue`). */
async function insertRow(trx: Transaction<StoreSchema>, job: Job, queueHeld = false): Promise<void> {
  const row = jobToRow(job);
  const labels = Object.entries(job.spec.labels).map(([key, value]) => ({
    job_id: job.id,
    key,
    value,
    owner: job.owner,
  }));
  try {
    await trx.insertInto('jobs').values(row).execute();
  } catch (error) {
    if (isUniqueViolation(error, 'jobs_pkey')) {
      throw new ValidationError('id', `A job with id ${job.id} already exists`);
    }
    throw error;
  }
  if (labels.length > 0) await trx.insertInto('job_labels').values(labels).execute();
  // A queue exists for the dispatcher once a job names it (a retry's queue has its first attempt).
  if (!queueHeld) await holdQueue(trx, job.spec.queue, { maxQueues: null, lock: 'key share' });
}

/** How many times `holdQueue` makes a row that a deletion forgets before it can hold it. */
const HOLD_QUEUE_TRIES = 5;

/**
 * The queue's row, made if it has none, and held until the commit. `key share` (a job's admission):
 * the deletion of the queue's last job, which locks the row to forget it (pg-retention.ts,
 * `forgetQueues`), waits for this transaction and then sees its job; or it went first, and the row
 * it deleted is made again here. `key share` does not keep claims, settings changes or other
 * admissions waiting. `no key update` (`putQueue`): changes of one queue's settings take turns.
 * A row to make when the store holds `maxQueues` queues already: `queueLimitError`.
 */
async function holdQueue(
  trx: Transaction<StoreSchema>,
  name: string,
  options: { readonly maxQueues: number | null; readonly lock: 'key share' | 'no key update' },
): Promise<QueueRow> {
  for (let tries = 0; tries < HOLD_QUEUE_TRIES; tries++) {
    const query = trx.selectFrom('queues').selectAll().where('name', '=', name);
    const held = await (options.lock === 'key share'
      ? query.forKeyShare()
      : query.forNoKeyUpdate()
    ).executeTakeFirst();
    if (held !== undefined) return held;
    if (options.maxQueues !== null) await checkQueueLimit(trx, name, options.maxQueues);
    await trx
      .insertInto('queues')
      .values({ name, paused: 0 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
  }
  throw new Error(`Queue ${name} was forgotten ${HOLD_QUEUE_TRIES} times while a job was admitted to it`);
}

/**
 * Refuses to make a new queue when the store holds `maxQueues` already. The makers of new queues,
 * on every node, take turns on one advisory lock held until their commit, each counting what the
 * ones before committed: the limit holds exactly. Only a new queue's admission takes it.
 */
async function checkQueueLimit(
  trx: Transaction<StoreSchema>,
  name: string,
  maxQueues: number,
): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended('jobworker new queues', 0))`.execute(trx);
  // Made by another admission while this one waited: not a new queue any more.
  if ((await queueRow(trx, name)) !== undefined) return;
  const { rows } = await sql<{
    n: string;
  }>`select count(*) as n from (select 1 from queues limit ${maxQueues}) q`.execute(trx);
  if (Number(rows[0]?.n ?? 0) >= maxQueues) throw queueLimitError(name, maxQueues);
}

function queueRow(db: Db, name: string): Promise<QueueRow | undefined> {
  return db.selectFrom('queues').selectAll().where('name', '=', name).executeTakeFirst();
}

async function countActiveIn(db: Db, queue: string): Promise<number> {
  const { n } = await countActiveQuery(db, queue).executeTakeFirstOrThrow();
  return Number(n);
}

async function queueState(db: Db, name: string, row: QueueRow | undefined): Promise<QueueState> {
  // One statement, so the counts come from one snapshot; each subquery is a range of a partial
  // index (`jobs_waiting_by_queue`, `jobs_active_by_queue`), never the queue's whole history.
  const { rows } = await sql<QueueCounts>`select
    (select count(*) from jobs where queue = ${name} and status = 'queued') as queued,
    (select count(*) from jobs where queue = ${name} and status = 'queued' and hold = 'starting') as starting,
    (select count(*) from jobs where queue = ${name}
      and (status in ('running', 'paused') or hold = 'starting')) as running`.execute(db);
  return stateOf(name, row, rows[0]!);
}

/** A queue's counts as `queueState` and `queueStatesStatement` read them (bigint: as text). */
interface QueueCounts {
  /** Queued jobs, those being started included. */
  readonly queued: number | string;
  /** Queued jobs being started. */
  readonly starting: number | string;
  /** Jobs holding a slot: running, paused or being started. */
  readonly running: number | string;
}

function stateOf(name: string, row: QueueRow | undefined, counts: QueueCounts): QueueState {
  return {
    name,
    concurrency: row?.concurrency ?? null,
    maxWaiting: row?.max_waiting ?? null,
    paused: row?.paused === 1,
    defaultLimits: limitsOfColumns(row ?? {}).defaults,
    maxLimits: limitsOfColumns(row ?? {}).maxima,
    isolation: parseIsolation(row?.isolation ?? null),
    running: Number(counts.running),
    // Jobs being started are counted as running, not twice.
    waiting: Number(counts.queued) - Number(counts.starting),
  };
}

/**
 * Settles the dependents of jobs that ended, and of those it cancels, until nothing changes.
 * Each dependent is locked `FOR UPDATE` before it is judged: two nodes settling the same one
 * take turns, and the second finds it no longer waiting.
 */
async function settle(trx: Transaction<StoreSchema>, ended: readonly string[], now: Date): Promise<Job[]> {
  const changed: Job[] = [];
  const work = [...ended];
  const nowMs = toMillis('now', now);
  while (work.length > 0) {
    const depId = work.shift()!;
    const dependents = await trx
      .selectFrom('job_deps as d')
      .innerJoin('jobs as j', 'j.id', 'd.job_id')
      .selectAll('j')
      .where('d.dep_id', '=', depId)
      .where('j.status', '=', 'queued')
      .where('j.hold', '=', 'after')
      .orderBy('j.id')
      .forUpdate('j')
      .execute();
    for (const waiting of dependents) {
      const deps = await trx
        .selectFrom('job_deps as d')
        .innerJoin('jobs as j', 'j.id', 'd.dep_id')
        .selectAll('j')
        .where('d.job_id', '=', waiting.id)
        .execute();
      const verdict = dependencyVerdict(deps.map(rowToJob));
      if (verdict.kind === 'waiting') continue;
      const changes = settledColumns(verdict, waiting.run_at, nowMs);
      // Released by this node's clock, but maybe not due by the database's (`PgJobStore.promoteDue`).
      if (changes.hold === null && waiting.run_at !== null && waiting.run_at > (await pgNowMs(trx))) {
        changes.hold = 'delay';
      }
      const row = await trx
        .updateTable('jobs')
        .set(changes)
        .where('id', '=', waiting.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      changed.push(rowToJob(row));
      if (verdict.kind === 'failed') work.push(waiting.id);
    }
  }
  return changed;
}
