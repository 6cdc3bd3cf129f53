import { type Kysely, sql } from 'kysely';
import type { Job } from '../../core/job.ts';
import { rowToJob } from '../job-row.ts';
import type { NodeRecord, NodeState, NodeStore } from '../node-store.ts';
import type { NodeRow, StoreSchema } from '../schema.ts';

/** Cluster membership in the PostgreSQL store (`PgJobStore.nodes`). */
export class PgNodeStore implements NodeStore {
  readonly #db: Kysely<StoreSchema>;

  constructor(db: Kysely<StoreSchema>) {
    this.#db = db;
  }

  async join(
    node: { readonly id: string; readonly url: string },
    at: Date,
  ): Promise<{ record: NodeRecord; previous?: NodeState }> {
    return this.#db.transaction().execute(async (trx) => {
      const before = await trx
        .selectFrom('nodes')
        .select('state')
        .where('id', '=', node.id)
        .forUpdate()
        .executeTakeFirst();
      const row = await trx
        .insertInto('nodes')
        .values({
          id: node.id,
          url: node.url,
          state: 'active',
          joined_at: at.getTime(),
          heartbeat_at: at.getTime(),
          reason: null,
        })
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({
            url: node.url,
            state: 'active',
            joined_at: at.getTime(),
            heartbeat_at: at.getTime(),
            reason: null,
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      return { record: recordOf(row), ...(before ? { previous: before.state } : {}) };
    });
  }

  async heartbeat(id: string, at: Date): Promise<NodeRecord | undefined> {
    // One statement: the update happens only for a live node; a lost one is read back as it is.
    const { rows } = await sql<NodeRow>`
      with beat as (
        update nodes set heartbeat_at = greatest(heartbeat_at, ${at.getTime()})
        where id = ${id} and state in ('active', 'draining') returning *
      )
      select * from beat
      union all
      select * from nodes where id = ${id} and not exists (select 1 from beat)`.execute(this.#db);
    return rows[0] ? recordOf(rows[0]) : undefined;
  }

  async setState(
    id: string,
    state: 'active' | 'draining' | 'left',
    reason?: string,
  ): Promise<NodeRecord | undefined> {
    const row = await this.#db
      .updateTable('nodes')
      .set({ state, reason: state === 'left' ? (reason ?? 'left the cluster') : null })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row ? recordOf(row) : undefined;
  }

  async getNode(id: string): Promise<NodeRecord | undefined> {
    const row = await this.#db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? recordOf(row) : undefined;
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = await this.#db.selectFrom('nodes').selectAll().orderBy('id').execute();
    return rows.map(recordOf);
  }

  async runningPerNode(): Promise<Map<string, number>> {
    const rows = await this.#db
      .selectFrom('jobs')
      .select(['node', (eb) => eb.fn.countAll<number>().as('n')])
      .where('status', 'in', ['running', 'paused'])
      .groupBy('node')
      .execute();
    return new Map(rows.map((r) => [r.node, Number(r.n)]));
  }

  jobsDecidedWhileLost(id: string, since: Date): Promise<Job[]> {
    return jobsDecidedWhileLostIn(this.#db, id, since);
  }

  async declareLost(silentSince: Date, reason: (node: NodeRecord) => string): Promise<NodeRecord[]> {
    return this.#db.transaction().execute(async (trx) => {
      // SKIP LOCKED: a node that another sweeper is declaring right now is that sweeper's.
      const silent = await trx
        .selectFrom('nodes')
        .selectAll()
        .where('state', 'in', ['active', 'draining'])
        .where('heartbeat_at', '<', silentSince.getTime())
        .forUpdate()
        .skipLocked()
        .execute();
      const lost: NodeRecord[] = [];
      for (const row of silent) {
        const why = reason(recordOf(row));
        const updated = await trx
          .updateTable('nodes')
          .set({ state: 'lost', reason: why })
          .where('id', '=', row.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        lost.push(recordOf(updated));
      }
      return lost;
    });
  }
}

/** The jobs of one node a sweep recorded `lost` since a time (see `NodeStore.jobsDecidedWhileLost`). */
export async function jobsDecidedWhileLostIn(
  db: Kysely<StoreSchema>,
  id: string,
  since: Date,
): Promise<Job[]> {
  const rows = await db
    .selectFrom('jobs')
    .selectAll()
    .where('node', '=', id)
    .where('status', '=', 'lost')
    .where('finished_at', '>=', since.getTime())
    .execute();
  return rows.map(rowToJob);
}

function recordOf(row: NodeRow): NodeRecord {
  return {
    id: row.id,
    url: row.url,
    state: row.state,
    joinedAt: new Date(row.joined_at),
    heartbeatAt: new Date(row.heartbeat_at),
    reason: row.reason,
  };
}
