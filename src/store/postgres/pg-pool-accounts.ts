import { type Kysely, sql, type Transaction } from 'kysely';
import {
  lowestFreeUid,
  type PoolAllocation,
  type PoolAllocations,
  type UsedIds,
} from '../../core/pool-uids.ts';
import type { StoreSchema } from '../schema.ts';

/**
 * The pool accounts of a cluster's nodes, in the store they share (`pool_accounts`): a user's job
 * runs as the same uid on whichever node claims it, and two users never get one uid, whichever
 * nodes gave them theirs. The uid is checked against the passwd and group of the node that gives
 * it; the node that runs a job checks its own (`JobAccounts.checkOnThisHost`). Allocations never
 * change once made, so each node caches those it read.
 */
export class PgPoolAccounts implements PoolAllocations {
  readonly #db: Kysely<StoreSchema>;
  readonly #known = new Map<string, number>();

  constructor(db: Kysely<StoreSchema>) {
    this.#db = db;
  }

  uidOf(user: string): number | undefined {
    return this.#known.get(user);
  }

  find(user: string): Promise<number | undefined> {
    return this.#read(user);
  }

  /**
   * The user's uid: one another node gave, or the lowest free one. Allocations are made one at a
   * time across the nodes (a transaction's advisory lock): racing for the same lowest uid, each
   * would lose to the others over and over. Once per user, so the wait is nothing.
   */
  async allocate(user: string, used: UsedIds, now = new Date()): Promise<number> {
    const known = await this.#read(user);
    if (known !== undefined) return known;
    const uid = await this.#db.transaction().execute(async (trx) => {
      await lockPool(trx);
      const given = await trx
        .selectFrom('pool_accounts')
        .select('uid')
        .where('user_name', '=', user)
        .executeTakeFirst();
      if (given !== undefined) return given.uid;
      const taken = await trx.selectFrom('pool_accounts').select('uid').execute();
      const free = lowestFreeUid(new Set(taken.map((r) => r.uid)), used, user);
      await trx
        .insertInto('pool_accounts')
        .values({ user_name: user, uid: free, allocated_at: now.getTime() })
        .execute();
      return free;
    });
    this.#known.set(user, uid);
    return uid;
  }

  /**
   * Takes in a node's own allocations (its `accounts.json`, from before it kept them here): each
   * whose user and uid are both free is kept as it was; the others are returned as conflicts, the
   * user keeping the uid the pool already gives (a uid the node gave two users' files would be
   * both's), so that a node can say which homes hold files of another uid.
   */
  async adopt(allocations: readonly PoolAllocation[]): Promise<PoolConflict[]> {
    if (allocations.length === 0) return [];
    // Under the allocations' lock: an allocation of another node in between would pick a uid this
    // takes in, and fail on the unique key.
    return this.#db.transaction().execute(async (trx) => {
      await lockPool(trx);
      const conflicts: PoolConflict[] = [];
      for (const a of allocations) {
        await trx
          .insertInto('pool_accounts')
          .values({ user_name: a.user, uid: a.uid, allocated_at: Date.parse(a.allocatedAt) || 0 })
          .onConflict((c) => c.doNothing())
          .execute();
        const kept = await trx
          .selectFrom('pool_accounts')
          .select('uid')
          .where('user_name', '=', a.user)
          .executeTakeFirst();
        if (kept?.uid === a.uid) continue;
        const holder = await trx
          .selectFrom('pool_accounts')
          .select('user_name')
          .where('uid', '=', a.uid)
          .executeTakeFirst();
        conflicts.push({ user: a.user, localUid: a.uid, poolUid: kept?.uid, uidHolder: holder?.user_name });
      }
      return conflicts;
    });
  }

  async #read(user: string): Promise<number | undefined> {
    const known = this.#known.get(user);
    if (known !== undefined) return known;
    const row = await this.#db
      .selectFrom('pool_accounts')
      .select('uid')
      .where('user_name', '=', user)
      .executeTakeFirst();
    if (row !== undefined) this.#known.set(user, row.uid);
    return row?.uid;
  }
}

/** A node's allocation the cluster's pool could not keep as it was (`PgPoolAccounts.adopt`). */
export interface PoolConflict {
  readonly user: string;
  /** The uid the node's `accounts.json` gave the user. */
  readonly localUid: number;
  /** The uid the pool gives the user now (undefined: none yet; the node's uid is another user's). */
  readonly poolUid: number | undefined;
  /** The user the pool gives the node's uid to, if another. */
  readonly uidHolder: string | undefined;
}

/** Allocations (and adoptions) one at a time across the nodes: a lock of the transaction. */
async function lockPool(trx: Transaction<StoreSchema>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended('jobworker pool accounts', 0))`.execute(trx);
}
