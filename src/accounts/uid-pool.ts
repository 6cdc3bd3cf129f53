import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../auth/atomic-file.ts';
import { InsufficientStorageError } from '../core/errors.ts';
import {
  lowestFreeUid,
  type PoolAllocation,
  type PoolAllocations,
  UID_POOL,
  type UsedIds,
} from '../core/pool-uids.ts';

export { type PoolAllocation, UID_POOL, type UsedIds };

export const ACCOUNTS_FILE = 'accounts.json';

interface PoolFile {
  readonly version: 1;
  readonly accounts: PoolAllocation[];
}

/**
 * Which pool uid each jobworker user has, kept in `<dataDir>/accounts.json` (0600) so that a user
 * gets the same uid, and so owns the same home and files, across restarts.
 *
 * A file in the data directory for a server of its own, which changes once per user in the
 * server's life, like `tokens.json`; one server per data directory writes it. The nodes of a
 * cluster keep theirs in the store they share instead (`PgPoolAccounts`: a job runs on whichever
 * node claims it), each taking in its file's allocations at its start. Two servers on one host
 * with different data directories keep separate pools over the same range: give them separate
 * homes directories and do not expect their users' uids to differ (docs/operations.md).
 */
export class UidPool implements PoolAllocations {
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

  async find(user: string): Promise<number | undefined> {
    return this.uidOf(user);
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
    const uid = lowestFreeUid(new Set([...this.#byUser.values()].map((a) => a.uid)), used, user);
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
