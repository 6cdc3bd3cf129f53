import { type Kysely, sql } from 'kysely';
import type { Job } from '../../core/job.ts';
import { rowToJob } from '../job-row.ts';
import type { NodeRecord, NodeStore } from '../node-store.ts';
import type { NodeRow, StoreSchema } from '../schema.ts';
import { sessionName } from './open-postgres.ts';
import { PG_NOW_MS } from './pg-now.ts';

/** The states of a node that beats: it claims (or drains) and runs jobs. */
const LIVE = ['active', 'draining'] as const;

/**
 * Cluster membership in the PostgreSQL store (`PgJobStore.nodes`), on a small pool of its own
 * (`db`): a node's heartbeat never waits behind its own long list queries for a connection, and a
 * sweep's declaration holds one connection while the jobs are decided on the main pool.
 */
export class PgNodeStore implements NodeStore {
  /** The nodes' own pool: joins, beats, drains, leaves and sweeps' declarations. */
  readonly #db: Kysely<StoreSchema>;
  /** The main pool: reads that serve requests (routing, listings), so they never take a beat's place. */
  readonly #reads: Kysely<StoreSchema>;
  /** The node whose server this is, and what its sessions are called: recorded at its join. */
  readonly #self: { readonly id: string; readonly sessionName: string } | undefined;

  constructor(
    db: Kysely<StoreSchema>,
    reads: Kysely<StoreSchema> = db,
    self?: { readonly id: string; readonly sessionName: string },
  ) {
    this.#db = db;
    this.#reads = reads;
    this.#self = self;
  }

  async join(node: { readonly id: string; readonly url: string }): Promise<{
    record: NodeRecord;
    previous?: NodeRecord;
  }> {
    return this.#db.transaction().execute(async (trx) => {
      // Under the row's lock: a sweep deciding this node's jobs holds it, and this waits for it.
      const before = await trx
        .selectFrom('nodes')
        .selectAll()
        .where('id', '=', node.id)
        .forUpdate()
        .executeTakeFirst();
      const fields = {
        url: node.url,
        state: 'active' as const,
        joined_at: PG_NOW_MS,
        heartbeat_at: PG_NOW_MS,
        reason: null,
        // Which sessions a sweep that declares it lost ends: this server's, when it is the node's.
        session_name: node.id === this.#self?.id ? this.#self.sessionName : null,
      };
      const row = await trx
        .insertInto('nodes')
        .values({ id: node.id, ...fields })
        .onConflict((oc) => oc.column('id').doUpdateSet(fields))
        .returningAll()
        .executeTakeFirstOrThrow();
      return { record: recordOf(row), ...(before ? { previous: recordOf(before) } : {}) };
    });
  }

  async heartbeat(id: string): Promise<NodeRecord | undefined> {
    // The update happens only for a live node. It waits while a sweep declares the node; then, if
    // the sweep declared it lost, it changes nothing, and a second statement (a snapshot taken
    // after that commit, which one statement's own snapshot would predate) reads the row as it is.
    // The node then joins again, which waits while the sweep decides its jobs. The time is the
    // database's, as the sweeps' judgement of it is: a node's own clock, off, would have it declared
    // lost at every sweep (behind), or unnoticed once dead for as long as it was ahead.
    const beat = await this.#db
      .updateTable('nodes')
      .set({ heartbeat_at: PG_NOW_MS })
      .where('id', '=', id)
      .where('state', 'in', LIVE)
      .returningAll()
      .executeTakeFirst();
    if (beat) return recordOf(beat);
    const row = await this.#db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? recordOf(row) : undefined;
  }

  async setDraining(id: string, draining: boolean): Promise<NodeRecord | undefined> {
    await this.#db
      .updateTable('nodes')
      .set({ state: draining ? 'draining' : 'active' })
      .where('id', '=', id)
      .where('state', 'in', LIVE)
      .execute();
    return this.#own(id);
  }

  async setUrl(id: string, url: string): Promise<NodeRecord | undefined> {
    await this.#db
      .updateTable('nodes')
      .set({ url })
      .where('id', '=', id)
      .where('state', 'in', LIVE)
      .execute();
    return this.#own(id);
  }

  /** A node's row read on the nodes' pool (after a change made on it). */
  async #own(id: string): Promise<NodeRecord | undefined> {
    const row = await this.#db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? recordOf(row) : undefined;
  }

  async leave(id: string, reason: string): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('nodes')
        .select('state')
        .where('id', '=', id)
        .forUpdate()
        .executeTakeFirst();
      if (row === undefined || !(LIVE as readonly string[]).includes(row.state)) return false;
      // A job of it still on record (an adoption that failed, a claim never started) would be
      // stranded by a node nobody sweeps: such a node stays a member, to be declared lost.
      const busy = await trx
        .selectFrom('jobs')
        .select('id')
        .where('node', '=', id)
        .where(sql<boolean>`(status in ('running', 'paused') or hold = 'starting')`)
        .limit(1)
        .executeTakeFirst();
      if (busy) return false;
      await trx.updateTable('nodes').set({ state: 'left', reason }).where('id', '=', id).execute();
      return true;
    });
  }

  async getNode(id: string): Promise<NodeRecord | undefined> {
    const row = await this.#reads.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? recordOf(row) : undefined;
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = await this.#reads.selectFrom('nodes').selectAll().orderBy('id').execute();
    return rows.map(recordOf);
  }

  async runningPerNode(): Promise<Map<string, number>> {
    const rows = await this.#reads
      .selectFrom('jobs')
      .select(['node', (eb) => eb.fn.countAll<number>().as('n')])
      .where('status', 'in', ['running', 'paused'])
      .groupBy('node')
      .execute();
    return new Map(rows.map((r) => [r.node, Number(r.n)]));
  }

  async endSessions(id: string): Promise<number> {
    // The sessions of the pools of the server that last joined as the node (`sessionName`, with its
    // tag, as its row records it): a server started again under the id meanwhile names its own with
    // a tag of its own, and its migration and join go on (until it joins, which waits while its
    // sweeper holds the row, the row names the old server). A row that records no name: a node of a
    // server before the tags, whose sessions were named after the id alone. Its hold on its id and
    // its LISTEN are named otherwise and left. Only those this role may end (PostgreSQL refuses the
    // others, and one refusal would fail the whole statement); never this very session.
    const { rows } = await sql<{
      ended: number;
    }>`select count(*) filter (where pg_terminate_backend(a.pid)) as ended
      from pg_stat_activity a join nodes n on n.id = ${id}
      where a.application_name = coalesce(n.session_name, ${sessionName(id)})
        and a.datname = current_database()
        and a.pid <> pg_backend_pid() and pg_has_role(a.usesysid, 'member')`.execute(this.#reads);
    return Number(rows[0]?.ended ?? 0);
  }

  async jobsDecidedWhileLost(id: string, since: Date): Promise<Job[]> {
    // The partial index `jobs_lost_by_node` (migration 0004-cluster): lost jobs are few.
    const rows = await this.#reads
      .selectFrom('jobs')
      .selectAll()
      .where('node', '=', id)
      .where('status', '=', 'lost')
      .where('finished_at', '>=', since.getTime())
      .execute();
    return rows.map(rowToJob);
  }

  async declareLost(
    silentForMs: number,
    reason: (node: NodeRecord) => string,
    decide: (node: NodeRecord) => Promise<void>,
  ): Promise<NodeRecord[]> {
    const declared: NodeRecord[] = [];
    let failure: unknown;
    // One node at a time, in two transactions. The first declares it, and commits: should the
    // second be cut short (this node frozen and its sessions ended by another's sweep, say), the
    // node still learns it was lost, and a later sweep decides what is left, rather than an
    // undone declaration leaving it active beside decisions that stand. The second holds its row
    // while its jobs are decided. `FOR UPDATE SKIP LOCKED` skips a node another sweeper holds.
    for (;;) {
      const lost = await this.#db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('nodes as n')
          .selectAll('n')
          .where('n.heartbeat_at', '<', sql<number>`${PG_NOW_MS} - ${silentForMs}`)
          .where((eb) =>
            eb.or([
              eb('n.state', 'in', LIVE),
              eb.and([
                eb('n.state', '=', 'lost'),
                eb.exists(
                  eb
                    .selectFrom('jobs as j')
                    .select('j.id')
                    .whereRef('j.node', '=', 'n.id')
                    .where(sql<boolean>`(j.status in ('running', 'paused') or j.hold = 'starting')`),
                ),
              ]),
            ]),
          )
          .where('n.id', 'not in', declared.length === 0 ? [''] : declared.map((d) => d.id))
          .orderBy('n.id')
          .limit(1)
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        if (row === undefined) return undefined;
        if (row.state === 'lost') return recordOf(row);
        return recordOf(
          await trx
            .updateTable('nodes')
            .set({ state: 'lost', reason: reason(recordOf(row)) })
            .where('id', '=', row.id)
            .returningAll()
            .executeTakeFirstOrThrow(),
        );
      });
      if (lost === undefined) {
        if (failure !== undefined) throw failure;
        return declared;
      }
      declared.push(lost);
      await this.#db.transaction().execute(async (trx) => {
        // Idle while the main pool decides, as long as that takes: the pool's timeout would end it.
        await sql`set local idle_in_transaction_session_timeout = 0`.execute(trx);
        // Still lost: a node that saw the declaration between the two and joined again keeps its
        // jobs (it gave up none, since none was decided yet). Its join waits while this holds it.
        const held = await trx
          .selectFrom('nodes')
          .select('id')
          .where('id', '=', lost.id)
          .where('state', '=', 'lost')
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        if (held === undefined) return;
        // Decided through the job store's own transactions (its pool) while this one holds the
        // node's row. A decision that fails keeps the declaration: the node learns at its next
        // beat that it was lost, and the next sweep decides what is left (a lost node that still
        // holds jobs is swept again).
        try {
          await decide(lost);
        } catch (err) {
          failure ??= err;
        }
      });
    }
  }
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
