import type { Kysely, Updateable } from 'kysely';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { isFinal, type Job, type ProcessIdentity, type StopRequest } from '../../core/job.ts';
import { assertTransition } from '../../core/states.ts';
import type { JobFinish, JobListQuery, JobPage, JobStore } from '../job-store.ts';
import { checkListQuery, pageOf } from '../list-query.ts';
import { jobToRow, rowToJob, toMillis } from './job-row.ts';
import { listJobsQuery, listRunningQuery } from './list-jobs-query.ts';
import { migrateSqlite } from './migrate-sqlite.ts';
import { openSqliteConnection } from './open-sqlite-connection.ts';
import type { JobRow, SqliteSchema } from './sqlite-schema.ts';

/** What a state change decides from: the columns its checks read. */
type CurrentState = Pick<JobRow, 'status' | 'stop_at' | 'stop_forced'>;

/** SQLite's extended error code for a PRIMARY KEY violation. */
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;

/**
 * The job store on one SQLite file (`node:sqlite`, WAL), the embedded default. One instance per
 * file per process: the instance serializes its own transactions on its single connection.
 */
export class SqliteJobStore implements JobStore {
  readonly #db: Kysely<SqliteSchema>;

  private constructor(db: Kysely<SqliteSchema>) {
    this.#db = db;
  }

  /** Opens (creating if needed) the database file at `path` and brings its schema up to date. */
  static async open(path: string): Promise<SqliteJobStore> {
    const db = openSqliteConnection(path);
    try {
      await migrateSqlite(db);
    } catch (error) {
      await db.destroy();
      throw error;
    }
    return new SqliteJobStore(db);
  }

  async insertJob(job: Job): Promise<void> {
    const row = jobToRow(job);
    const labels = Object.entries(job.spec.labels).map(([key, value]) => ({
      job_id: job.id,
      key,
      value,
      owner: job.owner,
    }));
    try {
      await this.#db.transaction().execute(async (trx) => {
        await trx.insertInto('jobs').values(row).execute();
        if (labels.length > 0) await trx.insertInto('job_labels').values(labels).execute();
      });
    } catch (error) {
      if ((error as { errcode?: unknown }).errcode === SQLITE_CONSTRAINT_PRIMARYKEY) {
        throw new ValidationError('id', `A job with id ${job.id} already exists`);
      }
      throw error;
    }
  }

  async getJob(id: string): Promise<Job | undefined> {
    const row = await this.#db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : rowToJob(row);
  }

  async listJobs(query: JobListQuery): Promise<JobPage> {
    const checked = checkListQuery(query);
    const { rows } = await this.#db.executeQuery(listJobsQuery(this.#db, checked));
    return pageOf(rows, checked.limit, rowToJob);
  }

  async markStarted(id: string, process: ProcessIdentity, startedAt: Date): Promise<Job> {
    const changes = {
      status: 'running',
      process: JSON.stringify(process),
      started_at: toMillis('startedAt', startedAt),
    } as const;
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
    const changes = { stop_at: toMillis('stop.at', stop.at), stop_by: stop.by, stop_grace_ms: stop.graceMs };
    return this.#change(id, (current) => {
      assertTransition(id, current.status, current.status === 'queued' ? 'cancelled' : 'stopped');
      return current.stop_at === null ? changes : null;
    });
  }

  /** Only while the job is running (else `IllegalTransitionError` to `stopped`); idempotent. */
  async markStopForced(id: string): Promise<Job> {
    return this.#change(id, (current) => {
      assertTransition(id, current.status, 'stopped');
      return current.stop_forced === 1 ? null : { stop_forced: 1 };
    });
  }

  async markFinished(id: string, finish: JobFinish): Promise<Job> {
    if (!isFinal(finish.status)) {
      throw ValidationError.expected('status', 'a final status', finish.status);
    }
    const changes = {
      status: finish.status,
      exit_code: finish.exit.exitCode,
      exit_signal: finish.exit.signal,
      exit_reason: finish.exit.reason,
      finished_at: toMillis('finishedAt', finish.finishedAt),
      stdout_bytes: finish.outputBytes.stdout,
      stderr_bytes: finish.outputBytes.stderr,
    };
    return this.#change(id, (current) => {
      assertTransition(id, current.status, finish.status);
      return changes;
    });
  }

  async listRunning(node: string): Promise<Job[]> {
    const { rows } = await this.#db.executeQuery(listRunningQuery(this.#db, node));
    return rows.map(rowToJob);
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }

  /**
   * One state change as one transaction: read the job's current state, let `decide` check it
   * (it throws to refuse) and return the columns to change, or null to change nothing.
   * The transaction holds the write lock from its first read, so no other writer slips in between.
   */
  async #change(id: string, decide: (current: CurrentState) => Updateable<JobRow> | null): Promise<Job> {
    return this.#db.transaction().execute(async (trx) => {
      const current = await trx
        .selectFrom('jobs')
        .select(['status', 'stop_at', 'stop_forced'])
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
    });
  }
}
