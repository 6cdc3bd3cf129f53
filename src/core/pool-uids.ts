/**
 * The uids the server hands out to users without a configured run-as account: systemd's
 * DynamicUser range, which no distribution assigns to regular or system accounts. A uid is used
 * as its own gid too.
 */
export const UID_POOL = { first: 61184, last: 65519 } as const;

/** One user's pool account, as kept. */
export interface PoolAllocation {
  readonly user: string;
  readonly uid: number;
  readonly allocatedAt: string;
}

/** Ids a new allocation must not take: those the host's passwd and group already name. */
export interface UsedIds {
  readonly usedUids: ReadonlySet<number>;
  readonly usedGids: ReadonlySet<number>;
}

/**
 * Which pool uid each jobworker user has: kept in the data directory by a server of its own
 * (`UidPool`, src/accounts/), in the store by the nodes of a cluster (`PgPoolAccounts`), whose
 * jobs run on whichever node claims them: a user's uid must then be the same on every node, or
 * one user's job would run on another node as the uid that node gave someone else. An allocation
 * never changes once made (kept after its user is removed), so what is known may be cached.
 */
export interface PoolAllocations {
  /** The uid `user` was given, when known here without a read. */
  uidOf(user: string): number | undefined;
  /** The user's uid, allocating (and keeping) the lowest one free in the pool and in `used` on first use. */
  allocate(user: string, used: UsedIds, now?: Date): Promise<number>;
  /** The uid `user` was given, wherever it was given (a read of the store when not known here). */
  find(user: string): Promise<number | undefined>;
}

/** The lowest uid of the pool that neither `taken` (the pool's) nor `used` (the host's) holds. */
export function lowestFreeUid(taken: ReadonlySet<number>, used: UsedIds, user: string): number {
  for (let candidate = UID_POOL.first; candidate <= UID_POOL.last; candidate++) {
    if (taken.has(candidate) || used.usedUids.has(candidate) || used.usedGids.has(candidate)) continue;
    return candidate;
  }
  throw new Error(
    `The uid pool ${UID_POOL.first}-${UID_POOL.last} is used up: no uid is left for user ${user}`,
  );
}
