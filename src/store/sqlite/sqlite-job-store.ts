import { type Kysely, sql, type Transaction, type Updateable } from 'kysely';
import type { Clock } from '../../core/clock.ts';
import { NotFoundError, QueueFullError, ValidationError } from '../../core/errors.ts';
import {
  dedupeScopeOf,
  isFinal,
  type Job,
  type JobProgress,
  type JobStatus,
  type ProcessIdentity,
  type StopRequest,
} from '../../core/job.ts';
import { assertTransition } from '../../core/states.ts';
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
import {
  compileGetJob,
  compileHasDependents,
  compileMarkFinished,
  compileMarkStarted,
  countInQueue,
  countQueuesUpTo,
  ensureQueue,
  insertJobRow,
  QUEUE_STATES,
  queueRow,
} from './compiled-statements.ts';
import { listActiveQuery, listJobsQuery } from './list-jobs-query.ts';
import { migrateSqlite } from './migrate-sqlite.ts';
import { openSqliteWithConnection } from './open-sqlite-connection.ts';
import { deleteFinishedIn, deleteJobIn, retentionBoundIn } from './sqlite-retention.ts';
import { SqliteUserStore } from './sqlite-user-store.ts';
import { SqliteWebhookStore } from './sqlite-webhook-store.ts';
import { checkpointerPath, WalCheckpointer } from './wal-checkpointer.ts';
import { type RunNow, WriteBatch } from './write-batch.ts';

/** How a store is opened (`SqliteJobStore.open`). */
export interface SqliteStoreOptions {
  /**
   * Checkpoints by the checkpoint helper, asked for on `clock` while the store writes; `log`
   * gets what goes wrong with it (a helper that dies hands the checkpoints back to SQLite).
   */
  readonly checkpoints?: { readonly clock: Clock; readonly log: (message: string) => void };
  /**
   * Whether job changes made through this store write webhook outbox rows (migration 0008's
   * triggers, when a webhook is configured or a job names `notify`). Default true. False for an
   * opener with no webhook dispatcher (the embedded `Worker`): its rows would never be sent by it,
   * and a server opened later on the directory would send the whole backlog at once.
   */
  readonly webhookOutbox?: boolean;
}

/** How many finished jobs `getJob` keeps at hand (a few hundred KiB at most). */
const FINISHED_CACHE_SIZE = 512;

/** How many queues' defaults `queueDefaults` keeps at hand; past it they are read afresh. */
const QUEUE_DEFAULTS_KEPT = 1024;

/** SQLite's extended error code for a PRIMARY KEY violation. */
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;

/**
 * The job store on one SQLite file (`node:sqlite`, WAL), the embedded default. One instance per
 * file per process: the instance serializes its own transactions on its single connection.
 */
export class SqliteJobStore implements JobStore {
  readonly #db: Kysely<StoreSchema>;
  /** `getJob`, compiled once: it is the API's hottest read and its SQL never changes. */
  readonly #getJob: ReturnType<typeof compileGetJob>;
  /** The statements of the start path (a start, an end, a look for dependents), compiled once. */
  readonly #markStarted: ReturnType<typeof compileMarkStarted>;
  readonly #markFinished = new Map<JobStatus, ReturnType<typeof compileMarkFinished>>();
  readonly #hasDependents: ReturnType<typeof compileHasDependents>;
  /** Starts and ends that come in one turn are committed together. */
  readonly #writes: WriteBatch<StoreSchema>;
  /**
   * Finished jobs read lately, by id. A finished job's row never changes again (a retry is a new
   * job; a finished one refuses every change); it only goes, by `deleteJob` or `deleteFinished`,
   * which take it out of here. Bounded: the oldest read goes first.
   */
  readonly #finished = new Map<string, Job>();
  /** Bumped by every deletion: a read that began before one does not fill the cache. */
  #deletions = 0;
  /**
   * Each queue's defaults as a submission reads them (`queueDefaults`), once per queue instead of
   * once per job. This store is its database's only writer, and `putQueue` its only change of
   * them (a queue a job makes exist has none): it clears the queue's entry. Bounded: a client
   * may name any number of queues.
   */
  readonly #queueDefaults = new Map<string, QueueDefaults>();
  /** Bumped as every `putQueue` ends: a read that began before that end does not fill the cache. */
  #queueWrites = 0;
  /**
   * False while no job has ever been admitted here with dependencies (since this store opened on a
   * database without any: `open` sets it): then no job has dependents, and the end of each needs
   * no look for them.
   */
  #mayHaveDependents = false;
  /** Takes the checkpoints off the event loop (`SqliteStoreOptions.checkpoints`). */
  #checkpointer: WalCheckpointer | undefined;
  /** Set by `close`: the memory relief, waiting on the helper, finds the connection gone. */
  #closing = false;
  /** Told of the queues each deletion forgot (`onQueuesForgotten`). */
  readonly #forgottenQueues = new ForgottenQueueListeners();

  /** Users, tokens and the audit trail, in the same database and on the same connection. */
  readonly users: SqliteUserStore;
  /** Webhooks, their outbox (filled by triggers on `jobs`) and deliveries; the same connection. */
  readonly webhooks: SqliteWebhookStore;

  private constructor(db: Kysely<StoreSchema>, runNow: RunNow) {
    this.#db = db;
    this.#writes = new WriteBatch(db, runNow);
    this.#getJob = compileGetJob(db);
    this.#markStarted = compileMarkStarted(db);
    this.#hasDependents = compileHasDependents(db);
    this.users = new SqliteUserStore(db);
    this.webhooks = new SqliteWebhookStore(db);
  }

  /**
   * Opens (creating if needed) the database file at `path` and brings its schema up to date.
   * With `checkpoints`, SQLite's checkpoints are taken off the event loop by the checkpoint
   * helper when it was built (`WalCheckpointer`): what a server does; a store opened without
   * checkpoints as SQLite does them, inside a commit.
   */
  static async open(path: string, options: SqliteStoreOptions = {}): Promise<SqliteJobStore> {
    const { db, connection } = openSqliteWithConnection(path);
    try {
      await migrateSqlite(db, { database: path });
      // A TEMP trigger is this connection's alone: it drops each outbox row the triggers of the
      // schema (or anything else) insert through it, and goes with the connection. RAISE(IGNORE)
      // in a BEFORE trigger skips that one insert; the job change that caused it goes on.
      if (options.webhookOutbox === false) {
        await sql`create temp trigger webhook_outbox_off before insert on main.webhook_outbox
          begin select raise(ignore); end`.execute(db);
      }
    } catch (error) {
      await db.destroy();
      throw error;
    }
    const store = new SqliteJobStore(db, (sql, parameters) => connection.runNow(sql, parameters));
    store.#mayHaveDependents = await anyDependencies(db);
    const helper = options.checkpoints && path !== ':memory:' ? checkpointerPath() : undefined;
    if (helper !== undefined && options.checkpoints) {
      store.#checkpointer = await WalCheckpointer.start({
        path: helper,
        database: path,
        connection: connection.connection,
        clock: options.checkpoints.clock,
        log: options.checkpoints.log,
      });
      const checkpointer = store.#checkpointer;
      connection.onUse = () => checkpointer.activity();
    }
    return store;
  }

  /** The checkpoint helper, while one runs for this store (tests, metrics). */
  get checkpointer(): WalCheckpointer | undefined {
    return this.#checkpointer;
  }

  async insertJob(job: Job): Promise<void> {
    await this.#db.transaction().execute((trx) => insertRow(trx, job));
  }

  admitJob(job: Job, now: Date, options: AdmitOptions = {}): Promise<Admission> {
    // Before its unit runs: from here on every job's end looks for dependents (`settleDependents`).
    if (job.spec.after.length > 0) this.#mayHaveDependents = true;
    // Submissions of many clients come together: they are committed together (see WriteBatch).
    return this.#writes.run((trx) => admitIn(trx, job, now, options.maxQueues ?? null));
  }

  previewAdmission(job: Job, now: Date, options: AdmitOptions = {}): Promise<Admission> {
    // A unit of a batch that throws is rolled back alone (its savepoint): the others commit.
    return previewed(
      this.#writes.run(async (trx) => {
        throw new AdmissionPreview(await admitIn(trx, job, now, options.maxQueues ?? null));
      }),
    );
  }

  async claimReady(queue: string, node: string, max: number): Promise<Job[]> {
    if (max <= 0) return [];
    // One transaction on the one connection: no other claim can come between the count and the
    // claim, so the queue's concurrency holds whoever calls (see `JobStore.claimReady`).
    return this.#db.transaction().execute(async (trx) => {
      const settings = await queueRow(trx, queue);
      if (settings === undefined || settings.paused === 1) return [];
      const free =
        settings.concurrency === null
          ? max
          : Math.min(max, settings.concurrency - (await countActiveIn(trx, queue)));
      if (free <= 0) return [];
      const ids = await trx
        .selectFrom('jobs')
        .select('id')
        .where('queue', '=', queue)
        .where(sql<boolean>`status = 'queued' and hold is null`)
        .orderBy('priority', 'desc')
        .orderBy('id')
        .limit(free)
        .execute();
      if (ids.length === 0) return [];
      const rows = await trx
        .updateTable('jobs')
        .set({ hold: 'starting', node })
        .where(
          'id',
          'in',
          ids.map((r) => r.id),
        )
        .returningAll()
        .execute();
      // The claim order is the start order: priority, then arrival.
      return rows.map(rowToJob).sort((a, b) => b.spec.priority - a.spec.priority || (a.id < b.id ? -1 : 1));
    });
  }

  async listStarting(node: string): Promise<Job[]> {
    const { rows } = await this.#db.executeQuery(listActiveQuery(this.#db, node, 'starting'));
    return rows.map(rowToJob);
  }

  async releaseClaim(id: string, node: string): Promise<Job> {
    return this.#change(id, releaseClaimDecision(id, node));
  }

  // `indexed by`: without statistics SQLite would read every queued job by status instead of
  // the small partial index of delayed ones, making each pass O(waiting jobs).
  async promoteDue(now: Date): Promise<number> {
    const result = await sql`update jobs indexed by jobs_delayed set hold = null
      where status = 'queued' and hold = 'delay' and run_at <= ${toMillis('now', now)}`.execute(this.#db);
    return Number(result.numAffectedRows ?? 0);
  }

  async nextRunAt(): Promise<Date | null> {
    const { rows } = await sql<{ run_at: number }>`select run_at from jobs indexed by jobs_delayed
      where status = 'queued' and hold = 'delay' order by run_at limit 1`.execute(this.#db);
    return rows[0] ? new Date(rows[0].run_at) : null;
  }

  async cancelQueued(id: string, stop: StopRequest, reason: string): Promise<Job> {
    return this.#change(id, cancelQueuedDecision(id, stop, reason));
  }

  async markRetried(id: string, finish: JobFinish, next: Job): Promise<Job> {
    return this.#db.transaction().execute(async (trx) => {
      const finished = await this.#finishIn(trx, id, finish, next);
      if (finished.retriedAs !== next.id) return finished;
      await insertRow(trx, next);
      await trx.updateTable('job_deps').set({ dep_id: next.id }).where('dep_id', '=', id).execute();
      return finished;
    });
  }

  async settleDependents(id: string, now: Date): Promise<Job[]> {
    // Most jobs have no dependents: one indexed read, no transaction, and none at all while no job
    // was ever admitted with dependencies. A dependent admitted after this read (or after this
    // look at the flag) sees its dependency already ended (the end committed first) and is never held.
    if (!this.#mayHaveDependents) return [];
    const { rows } = await this.#db.executeQuery({ ...this.#hasDependents, parameters: [id] });
    if (rows.length === 0) return [];
    return this.#db.transaction().execute((trx) => settle(trx, [id], now));
  }

  async settleAll(now: Date): Promise<Job[]> {
    return this.#db.transaction().execute(async (trx) => {
      const ended = await trx
        .selectFrom('job_deps as d')
        .innerJoin('jobs as w', 'w.id', 'd.job_id')
        .innerJoin('jobs as dep', 'dep.id', 'd.dep_id')
        .select('d.dep_id')
        .distinct()
        .where('w.status', '=', 'queued')
        .where('w.hold', '=', 'after')
        .where('dep.status', 'not in', ['queued', 'running', 'paused'])
        .where('dep.retried_as', 'is', null)
        .execute();
      return settle(
        trx,
        ended.map((r) => r.dep_id),
        now,
      );
    });
  }

  async markPaused(id: string, at: Date): Promise<Job> {
    return this.#change(id, pausedDecision(id, at));
  }

  async markResumed(id: string): Promise<Job> {
    return this.#change(id, resumedDecision(id));
  }

  async getQueue(name: string): Promise<QueueState> {
    return this.#db.transaction().execute(async (trx) => queueState(trx, name, await queueRow(trx, name)));
  }

  async queueDefaults(name: string): Promise<QueueDefaults> {
    const known = this.#queueDefaults.get(name);
    if (known) return known;
    const writes = this.#queueWrites;
    // Frozen: the same object now goes to every submission of the queue.
    const defaults = deepFreeze(queueDefaultsOf(await queueRow(this.#db, name)));
    if (writes === this.#queueWrites) {
      if (this.#queueDefaults.size >= QUEUE_DEFAULTS_KEPT) this.#queueDefaults.clear();
      this.#queueDefaults.set(name, defaults);
    }
    return defaults;
  }

  async putQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueState> {
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const current = await queueRow(trx, name);
        const row: QueueRow = {
          name,
          concurrency:
            settings.concurrency !== undefined ? settings.concurrency : (current?.concurrency ?? null),
          max_waiting:
            settings.maxWaiting !== undefined ? settings.maxWaiting : (current?.max_waiting ?? null),
          paused: settings.paused !== undefined ? (settings.paused ? 1 : 0) : (current?.paused ?? 0),
          ...limitColumns({
            defaults: settings.defaultLimits ?? limitsOfColumns(current ?? {}).defaults,
            maxima: settings.maxLimits ?? limitsOfColumns(current ?? {}).maxima,
          }),
          isolation:
            settings.isolation !== undefined
              ? settings.isolation && JSON.stringify(settings.isolation)
              : (current?.isolation ?? null),
        };
        await trx
          .insertInto('queues')
          .values(row)
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({
              concurrency: row.concurrency,
              max_waiting: row.max_waiting,
              paused: row.paused,
              default_limits: row.default_limits,
              max_limits: row.max_limits,
              isolation: row.isolation,
            }),
          )
          .execute();
        return queueState(trx, name, row);
      });
    } finally {
      // Until here a read returns the settings from before the change, as the database did.
      this.#queueWrites++;
      this.#queueDefaults.delete(name);
    }
  }

  async listQueues(): Promise<QueueState[]> {
    const { rows } = await sql<QueueRow & QueueCounts>`${sql.raw(QUEUE_STATES)}`.execute(this.#db);
    return rows.map((row) => stateOf(row.name, row, row));
  }

  async listReadyQueues(): Promise<(QueueSettings & { readonly name: string })[]> {
    // A skip scan of the ready index: each step finds the next queue name after the last in
    // O(log n), so the cost is per queue with ready jobs, not per ready job or per queue ever named.
    const { rows } = await sql<QueueRow>`
      with recursive ready(name) as (
        select (select min(queue) from jobs indexed by jobs_ready where status = 'queued' and hold is null)
        union all
        select (select min(queue) from jobs indexed by jobs_ready
                where status = 'queued' and hold is null and queue > ready.name)
        from ready where ready.name is not null
      )
      select q.name, q.concurrency, q.max_waiting, q.paused, q.default_limits, q.max_limits, q.isolation
      from ready cross join queues q on q.name = ready.name
      where ready.name is not null
      order by q.name`.execute(this.#db);
    return rows.map((r) => ({
      name: r.name,
      concurrency: r.concurrency,
      maxWaiting: r.max_waiting,
      paused: r.paused === 1,
      defaultLimits: limitsOfColumns(r).defaults,
      maxLimits: limitsOfColumns(r).maxima,
      isolation: parseIsolation(r.isolation),
    }));
  }

  async countActive(queue: string): Promise<number> {
    return countActiveIn(this.#db, queue);
  }

  async getJob(id: string): Promise<Job | undefined> {
    const cached = this.#finished.get(id);
    if (cached !== undefined) return cached;
    const deletions = this.#deletions;
    // Run through Kysely (its connection lock keeps it out of another caller's open transaction)
    // but not built nor compiled again; the driver reuses the prepared statement for this SQL.
    const query: ReturnType<typeof compileGetJob> = { ...this.#getJob, parameters: [id] };
    const { rows } = await this.#db.executeQuery(query);
    const row = rows[0];
    if (row === undefined) return undefined;
    const job = rowToJob(row);
    if (isFinal(job.status) && deletions === this.#deletions) {
      if (this.#finished.size >= FINISHED_CACHE_SIZE) {
        this.#finished.delete(this.#finished.keys().next().value as string);
      }
      this.#finished.set(id, job);
    }
    return job;
  }

  async listJobs(query: JobListQuery): Promise<JobPage> {
    const checked = checkListQuery(query);
    const { rows } = await this.#db.executeQuery(listJobsQuery(this.#db, checked));
    return pageOf(rows, checked.limit, rowToJob);
  }

  /** `claimedBy` is not checked: one server claims and starts every job of an SQLite store. */
  async markStarted(
    id: string,
    process: ProcessIdentity,
    startedAt: Date,
    _claimedBy?: string,
  ): Promise<Job> {
    const changes = {
      status: 'running',
      hold: null,
      process: JSON.stringify(process),
      started_at: toMillis('startedAt', startedAt),
    } as const;
    const query: ReturnType<typeof compileMarkStarted> = {
      ...this.#markStarted,
      parameters: [changes.process, changes.started_at, id],
    };
    const { rows } = await this.#writes.execute(query);
    if (rows[0] !== undefined) return rowToJob(rows[0]);
    // Not a legal start (or no such job): the general path names the reason.
    return this.#change(id, (current) => {
      assertTransition(id, current.status, 'running');
      return changes;
    });
  }

  /**
   * Records the first stop request of a queued or running job; later ones return the job as it is.
   * On a finished job it throws `IllegalTransitionError` (from its final status, to `stopped`).
   */
  async markStopRequested(id: string, stop: StopRequest): Promise<Job> {
    return this.#change(id, stopRequestedDecision(id, stop));
  }

  /** Only while the job is running (else `IllegalTransitionError` to `stopped`); idempotent. */
  async markStopForced(id: string): Promise<Job> {
    return this.#change(id, stopForcedDecision(id));
  }

  async markFinished(id: string, finish: JobFinish): Promise<Job> {
    const plain = finish.stop === undefined && finish.result === undefined && finish.claimedBy === undefined;
    if (plain && isFinal(finish.status)) {
      let statement = this.#markFinished.get(finish.status);
      if (statement === undefined) {
        statement = compileMarkFinished(this.#db, finish.status);
        this.#markFinished.set(finish.status, statement);
      }
      const query: ReturnType<typeof compileMarkFinished> = {
        ...statement,
        parameters: [
          finish.exit.exitCode,
          finish.exit.signal,
          finish.exit.reason,
          toMillis('finishedAt', finish.finishedAt),
          finish.outputBytes.stdout,
          finish.outputBytes.stderr,
          finish.usage ? JSON.stringify(finish.usage) : null,
          finish.stopForced === true ? 1 : 0,
          id,
        ],
      };
      const { rows } = await this.#writes.execute(query);
      if (rows[0] !== undefined) return rowToJob(rows[0]);
    }
    // A stop to record with the end, a claim to check, or not a legal end: the general path (which
    // names the reason).
    return this.#db.transaction().execute((trx) => this.#finishIn(trx, id, finish));
  }

  async setProgress(id: string, progress: JobProgress): Promise<Job | undefined> {
    const row = await this.#db
      .updateTable('jobs')
      .set({ progress: progressToText(progress) })
      .where('id', '=', id)
      .where('status', 'in', ['queued', 'running', 'paused'])
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? undefined : rowToJob(row);
  }

  async getResult(id: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('job_results')
      .select('json')
      .where('job_id', '=', id)
      .executeTakeFirst();
    return row?.json;
  }

  async listRunning(node: string): Promise<Job[]> {
    const { rows } = await this.#db.executeQuery(listActiveQuery(this.#db, node, 'running'));
    return rows.map(rowToJob);
  }

  /** Every job here is this server's (the data directory's lock): see `JobStore.takeOverJobs`. */
  async takeOverJobs(node: string): Promise<TakenOver[]> {
    // The condition of the partial index `jobs_active_by_node`, word for word: a walk of it.
    const active = sql<boolean>`(status in ('running', 'paused') or hold = 'starting')`;
    return this.#db.transaction().execute(async (trx) => {
      const others = await trx
        .selectFrom('jobs')
        .select(['node', sql<number>`count(*)`.as('jobs')])
        .where(active)
        .where('node', '!=', node)
        .groupBy('node')
        .orderBy('node')
        .execute();
      if (others.length === 0) return [];
      await trx.updateTable('jobs').set({ node }).where(active).where('node', '!=', node).execute();
      return others.map((row) => ({ from: row.node, jobs: Number(row.jobs) }));
    });
  }

  async deleteJob(id: string): Promise<Job> {
    this.#forget([id]);
    const { deleted, forgotten } = await deleteJobIn(this.#db, id).finally(() => this.#forget([id]));
    this.#forgottenQueues.tell(forgotten);
    return deleted;
  }

  retentionBound(limits: RetentionLimits): Promise<FinishedBound | null> {
    return retentionBoundIn(this.#db, limits);
  }

  async deleteFinished(query: DeleteFinishedQuery): Promise<string[]> {
    this.#deletions++;
    const { deleted: ids, forgotten } = await deleteFinishedIn(this.#db, query);
    this.#forget(ids);
    this.#forgottenQueues.tell(forgotten);
    return ids;
  }

  onQueuesForgotten(listener: QueuesForgottenListener): () => void {
    return this.#forgottenQueues.add(listener);
  }

  /** Takes deleted (or being deleted) jobs out of the cache of finished ones. */
  #forget(ids: readonly string[]): void {
    this.#deletions++;
    for (const id of ids) this.#finished.delete(id);
  }

  async listDirsToRemove(limit: number): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('job_dirs_to_remove')
      .select('id')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  async forgetDirsRemoved(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.deleteFrom('job_dirs_to_remove').where('id', 'in', ids).execute();
  }

  async releaseMemory(): Promise<void> {
    // Quiet now: the WAL's pages go to their place in the database (a passive checkpoint waits for
    // no reader) instead of inside a commit of the next burst, once the WAL passes its threshold
    // (WAL_CHECKPOINT_PAGES); and since a checkpoint fsyncs, the commits before it are on disk,
    // which synchronous=NORMAL otherwise leaves to the next checkpoint.
    const byHelper = await this.#checkpointer?.checkpoint();
    // Closed while the helper answered: the connection is gone, and its close saw to the WAL.
    if (this.#closing) return;
    if (!byHelper) await sql`pragma wal_checkpoint(passive)`.execute(this.#db);
    // SQLite's page cache grows to its 2 MB bound with the database and stays so: every page not
    // in use is freed (sqlite3_db_release_memory), and comes back from the kernel's page cache.
    await sql`pragma shrink_memory`.execute(this.#db);
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#writes.settle();
    await this.#db.destroy();
    // After the connection: the helper is then the last one, whose close copies the rest of the
    // WAL into the database and removes it, as the server's own close would have.
    await this.#checkpointer?.close();
  }

  /**
   * One state change as one transaction: read the job's current state, let `decide` check it
   * (it throws to refuse) and return the columns to change, or null to change nothing.
   * The transaction holds the write lock from its first read, so no other writer slips in between.
   */
  async #change(id: string, decide: (current: CurrentState) => Updateable<JobRow> | null): Promise<Job> {
    return this.#db.transaction().execute((trx) => changeIn(trx, id, decide));
  }

  /** The end of a job (see `JobStore.markFinished`), and its retry as `next` when `finishDecision` takes it, in `trx`. */
  async #finishIn(trx: Transaction<StoreSchema>, id: string, finish: JobFinish, next?: Job): Promise<Job> {
    const finished = await changeIn(trx, id, finishDecision(id, finish, next));
    await insertResult(trx, id, finish);
    return finished;
  }
}

type Db = Kysely<StoreSchema> | Transaction<StoreSchema>;

/** Stores the value of a finish's result, in the transaction that records the end. */
async function insertResult(trx: Transaction<StoreSchema>, id: string, finish: JobFinish): Promise<void> {
  const { result } = finish;
  if (result === undefined || !('json' in result)) return;
  await trx
    .insertInto('job_results')
    .values({ job_id: id, json: result.json })
    .onConflict((oc) => oc.column('job_id').doUpdateSet({ json: result.json }))
    .execute();
}

/** The admission of one job (see `JobStore.admitJob`), inside the caller's transaction. */
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
  const queue = await queueRow(trx, job.spec.queue);
  // A new queue, counted in the transaction that would make it: the one connection writes alone,
  // and the admissions of a batch before this one are in the count.
  if (queue === undefined && maxQueues !== null && (await countQueuesUpTo(trx, maxQueues)) >= maxQueues) {
    throw queueLimitError(job.spec.queue, maxQueues);
  }
  if (queue?.max_waiting != null) {
    const waiting = await countInQueue(trx, 'waitingUpTo', job.spec.queue, queue.max_waiting);
    if (waiting >= queue.max_waiting) throw new QueueFullError(job.spec.queue, queue.max_waiting);
  }

  const deps = (await latestAttempts(job.spec.after, (id) => getRow(trx, id))).map(rowToJob);
  const stored = admittedAs(job, dependencyVerdict(deps), now);
  await insertRow(trx, stored, queue !== undefined);
  if (stored.status === 'queued' && deps.length > 0) {
    await trx
      .insertInto('job_deps')
      .values(deps.map((dep) => ({ job_id: job.id, dep_id: dep.id })))
      .execute();
  }
  return { admitted: true, job: stored };
}

/** One state change inside a transaction (see `#change`). */
async function changeIn(
  trx: Transaction<StoreSchema>,
  id: string,
  decide: (current: CurrentState) => Updateable<JobRow> | null,
): Promise<Job> {
  const current = await trx
    .selectFrom('jobs')
    .select(['status', 'node', 'stop_at', 'stop_by', 'stop_also_by', 'stop_forced', 'hold'])
    .where('id', '=', id)
    .executeTakeFirst();
  if (current === undefined) throw new NotFoundError(id);
  const changes = decide(current);
  const row =
    changes === null
      ? await trx.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
      : await trx
          .updateTable('jobs')
          .set(changes)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
  return rowToJob(row);
}

/** `queueExists`: the caller read the job's queue row in this transaction (no insert needed). */
async function insertRow(trx: Transaction<StoreSchema>, job: Job, queueExists = false): Promise<void> {
  const row = jobToRow(job);
  const labels = Object.entries(job.spec.labels).map(([key, value]) => ({
    job_id: job.id,
    key,
    value,
    owner: job.owner,
  }));
  try {
    await insertJobRow(trx, row);
  } catch (error) {
    if ((error as { errcode?: unknown }).errcode === SQLITE_CONSTRAINT_PRIMARYKEY) {
      throw new ValidationError('id', `A job with id ${job.id} already exists`);
    }
    throw error;
  }
  if (labels.length > 0) await trx.insertInto('job_labels').values(labels).execute();
  // A queue exists for the dispatcher once a job names it.
  if (!queueExists) await ensureQueue(trx, job.spec.queue);
}

function getRow(db: Db, id: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

function countActiveIn(db: Db, queue: string): Promise<number> {
  return countInQueue(db, 'active', queue);
}

async function queueState(db: Db, name: string, row: QueueRow | undefined): Promise<QueueState> {
  const queued = await countInQueue(db, 'queued', name);
  const running = await countActiveIn(db, name);
  const starting = await countInQueue(db, 'starting', name);
  return stateOf(name, row, { queued, starting, running });
}

/** A queue's counts as `QUEUE_COUNTS` and `QUEUE_STATES` read them. */
interface QueueCounts {
  /** Queued jobs, those being started included. */
  readonly queued: number;
  /** Queued jobs being started. */
  readonly starting: number;
  /** Jobs holding a slot: running, paused or being started. */
  readonly running: number;
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
 * A dependent is released when every dependency (latest attempt) succeeded, cancelled when one
 * ended otherwise, and left waiting while one is not done.
 */
async function settle(trx: Transaction<StoreSchema>, ended: readonly string[], now: Date): Promise<Job[]> {
  const changed: Job[] = [];
  const work = [...ended];
  const nowMs = toMillis('now', now);
  while (work.length > 0) {
    const depId = work.shift()!;
    // CROSS JOIN keeps SQLite on the edge index first: the dependents of one job, then each by id.
    const dependents = await trx
      .selectFrom('job_deps as d')
      .crossJoin('jobs as j')
      .selectAll('j')
      .whereRef('j.id', '=', 'd.job_id')
      .where('d.dep_id', '=', depId)
      .where('j.status', '=', 'queued')
      .where('j.hold', '=', 'after')
      .execute();
    for (const waiting of dependents) {
      const deps = await trx
        .selectFrom('job_deps as d')
        .crossJoin('jobs as j')
        .selectAll('j')
        .whereRef('j.id', '=', 'd.dep_id')
        .where('d.job_id', '=', waiting.id)
        .execute();
      const verdict = dependencyVerdict(deps.map(rowToJob));
      if (verdict.kind === 'waiting') continue;
      const changes = settledColumns(verdict, waiting.run_at, nowMs);
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

/** Whether any job was ever admitted with dependencies that are still on record. */
async function anyDependencies(db: Kysely<StoreSchema>): Promise<boolean> {
  const row = await db.selectFrom('job_deps').select(sql<number>`1`.as('one')).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** `value`, with every object in it frozen. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
