import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../auth/atomic-file.ts';
import { InsufficientStorageError } from '../core/errors.ts';

/**
 * The uids the server hands out to users without a configured run-as account: systemd's
 * DynamicUser range, which no distribution assigns to regular or system accounts. A uid is used
 * as its own gid too.
 */
export const UID_POOL = { first: 61184, last: 65519 } as const;

export const ACCOUNTS_FILE = 'accounts.json';

/** One user's pool account, as kept. */
export interface PoolAllocation {
  readonly user: string;
  readonly uid: number;
  readonly allocatedAt: string;
}

interface PoolFile {
  readonly version: 1;
  readonly accounts: PoolAllocation[];
}

/** Ids a new allocation must not take: those the host's passwd and group already name. */
export interface UsedIds {
  readonly usedUids: ReadonlySet<number>;
  readonly usedGids: ReadonlySet<number>;
}

/**
 * Which pool uid each jobworker user has, kept in `<dataDir>/accounts.json` (0600) so that a user
 * gets the same uid, and so owns the same home and files, across restarts.
 *
 * A file in the data directory rather than a table in the job store: a uid is a fact of one host
 * (its kernel, its passwd, its homes directory), while the store may be shared by several nodes
 * on other hosts; and it changes once per user in a server's life, like `tokens.json`. One server
 * per data directory writes it. Two servers on one host with different data directories keep
 * separate pools over the same range: give them separate homes directories and do not expect
 * their users' uids to differ (docs/operations.md).
 */
export class UidPool {
  readonly #path: string;
  readonly #byUser: Map<string, PoolAllocation>;
  /** Allocations are made one at a time: two users never get the same uid. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, allocations: readonly PoolAllocation[]) {
    this.#path = path;
    this.#byUser = new Map(allocations.map((a) => [a.user, a]));
  }

  static async open(dataDir: string): Promise<UidPool> {
    const path = join(dataDir, ACCOUNTS_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new UidPool(path, []);
      throw err;
    }
    return new UidPool(path, parsePoolFile(path, text));
  }

  /** The uid `user` was given, if any. */
  uidOf(user: string): number | undefined {
    return this.#byUser.get(user)?.uid;
  }

  /** Every allocation, oldest first. */
  list(): PoolAllocation[] {
    return [...this.#byUser.values()];
  }

  /** The user's uid, allocating (and persisting) the lowest free one on first use. */
  allocate(user: string, used: UsedIds, now = new Date()): Promise<number> {
    const known = this.uidOf(user);
    if (known !== undefined) return Promise.resolve(known);
    const next = this.#queue.then(() => this.#allocate(user, used, now));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #allocate(user: string, used: UsedIds, now: Date): Promise<number> {
    const known = this.uidOf(user);
    if (known !== undefined) return known;
    const taken = new Set([...this.#byUser.values()].map((a) => a.uid));
    let uid: number | undefined;
    for (let candidate = UID_POOL.first; candidate <= UID_POOL.last; candidate++) {
      if (taken.has(candidate) || used.usedUids.has(candidate) || used.usedGids.has(candidate)) continue;
      uid = candidate;
      break;
    }
    if (uid === undefined) {
      throw new Error(
        `The uid pool ${UID_POOL.first}-${UID_POOL.last} is used up: no uid is left for user ${user}`,
      );
    }
    const allocation: PoolAllocation = { user, uid, allocatedAt: now.toISOString() };
    const accounts = [...this.#byUser.values(), allocation];
    const file: PoolFile = { version: 1, accounts };
    try {
      await writeFileAtomic(this.#path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
      throw new InsufficientStorageError(
        `Could not record the account of user ${user} in ${this.#path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.#byUser.set(user, allocation);
    return uid;
  }
}

function parsePoolFile(path: string, text: string): PoolAllocation[] {
  let file: unknown;
  try {
    file = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const accounts = (file as Partial<PoolFile> | null)?.accounts;
  if ((file as Partial<PoolFile> | null)?.version !== 1 || !Array.isArray(accounts)) {
    throw new Error(`${path}: expected {"version": 1, "accounts": [...]}`);
  }
  for (const a of accounts as unknown[]) {
    const { user, uid } = (a ?? {}) as Partial<PoolAllocation>;
    if (typeof user !== 'string' || !Number.isInteger(uid)) {
      throw new Error(
        `${path}: expected each account as {"user", "uid", "allocatedAt"}, got ${JSON.stringify(a)}`,
      );
    }
  }
  return accounts as PoolAllocation[];
}
