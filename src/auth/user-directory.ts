import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';
import type { TokenRecord, UserChanges, UserRecord, UserStore } from '../store/user-store.ts';
import type { Caller, Principal, Role } from './principal.ts';
import { generateToken, hashToken } from './token.ts';

/** `last_used_at` is written at most this often per token: a token used in a loop costs no writes. */
export const TOUCH_INTERVAL_MS = 60_000;

/** Why a token authenticated nobody (for the audit trail and the log; never told to the client). */
export type TokenRefusal = 'unknown' | 'expired' | 'revoked' | 'user-disabled' | 'user-removed';

/** What a presented token stands for: a principal, or why not (with the token's id and user when known). */
export type TokenVerdict =
  | {
      readonly ok: true;
      readonly principal: Principal;
      readonly tokenId: string;
      /** When the token expires (ms since the epoch); null or absent: never. */
      readonly expiresAt?: number | null;
    }
  | { readonly ok: false; readonly reason: TokenRefusal; readonly tokenId?: string; readonly user?: string };

interface TokenEntry {
  readonly id: string;
  readonly user: string;
  readonly label: string | null;
  readonly expiresAt: number | null;
  revoked: boolean;
  /** What `last_used_at` holds (or is about to), in ms. */
  lastUsedAt: number | null;
}

interface UserEntry {
  readonly record: UserRecord;
  /** Frozen, shared by every request of the user; undefined while the user is disabled. */
  readonly principal: Principal | undefined;
}

/** A new user as `addUser` takes it. */
export interface NewUser {
  readonly name: string;
  readonly role: Role;
  readonly runAs?: string | null;
}

/** A new token as `issueToken` takes it. */
export interface NewToken {
  readonly user: string;
  readonly label?: string | null;
  /** Milliseconds from now; absent or null: never expires. */
  readonly lifetimeMs?: number | null;
}

/**
 * The users and tokens the server knows, held in memory in step with the store: every change is
 * written to the store first and applied to the index once the write committed, so a revoke, a
 * disable or a removal takes effect on the very next request. A token is looked up by its SHA-256
 * (one hash and one map lookup per request, whatever the number of tokens; the lookup's timing says
 * nothing about how much of a wrong token was right), and its expiry checked against the clock at
 * each use. With SQLite one server writes the store (the data directory lock); with PostgreSQL
 * the nodes of a cluster share it, and each reloads its directory when the store says the users or
 * tokens changed (`reload`, on a notification: docs/cluster.md).
 */
export class UserDirectory {
  readonly #store: UserStore;
  readonly #clock: Clock;
  readonly #onError: (err: unknown) => void;
  readonly #onRevoked: (user: string, tokenId?: string) => void;
  /** By user: how many times the user itself lost power (`revision`); absent: never. */
  readonly #revisions = new Map<string, number>();
  readonly #users = new Map<string, UserEntry>();
  readonly #byHash = new Map<string, TokenEntry>();
  readonly #byId = new Map<string, TokenEntry>();
  readonly #writes = new Set<Promise<void>>();

  private constructor(
    store: UserStore,
    clock: Clock,
    onError: (err: unknown) => void,
    onRevoked: (user: string, tokenId?: string) => void,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#onError = onError;
    this.#onRevoked = onRevoked;
  }

  /**
   * Loads every user and token of `store`. `onError` hears of `last_used_at` writes that failed.
   * `onRevoked` is told, once the change is in force, of each user whose credentials lost power,
   * here or (`reload`) on another node: with a token id when that token alone was revoked (or
   * rotated out), without one when the user was disabled, removed or given another role. What they
   * authorized before, open streams, must end then (`JobService.endStreamsOf`).
   */
  static async open(
    store: UserStore,
    options: {
      clock?: Clock;
      onError?: (err: unknown) => void;
      onRevoked?: (user: string, tokenId?: string) => void;
    } = {},
  ): Promise<UserDirectory> {
    const accounts = new UserDirectory(
      store,
      options.clock ?? systemClock,
      options.onError ?? (() => undefined),
      options.onRevoked ?? (() => undefined),
    );
    for (const user of await store.listUsers()) accounts.#setUserEntry(user);
    for (const token of await store.listTokens()) accounts.#addTokenEntry(token);
    return accounts;
  }

  /**
   * Reads every user and token again (another node of the cluster changed them) and swaps them in
   * at once: a request sees either the old directory or the new one. When a token was last used
   * is kept as the later of the two, so a reload never makes this node write it again early.
   */
  async reload(): Promise<void> {
    const [users, tokens] = await Promise.all([this.#store.listUsers(), this.#store.listTokens()]);
    const lastUsed = new Map([...this.#byId.values()].map((t) => [t.id, t.lastUsedAt]));
    const before = { users: new Map(this.#users), tokens: new Map(this.#byId) };
    this.#users.clear();
    this.#byHash.clear();
    this.#byId.clear();
    for (const user of users) this.#setUserEntry(user);
    for (const token of tokens) {
      this.#addTokenEntry(token);
      const entry = this.#byId.get(token.id)!;
      const mine = lastUsed.get(token.id) ?? null;
      if (mine !== null && (entry.lastUsedAt === null || mine > entry.lastUsedAt)) entry.lastUsedAt = mine;
    }
    const weakenedUsers = new Set<string>();
    for (const [name, was] of before.users) {
      const now = this.#users.get(name)?.record;
      // Removed and added again since the last reload: another user of the same name.
      const again = now !== undefined && now.createdAt.getTime() !== was.record.createdAt.getTime();
      if (again || weakened(was.record, now)) weakenedUsers.add(name);
    }
    for (const user of weakenedUsers) this.#revoked(user);
    for (const [id, was] of before.tokens) {
      if (weakenedUsers.has(was.user)) continue;
      if (!was.revoked && this.#byId.get(id)?.revoked !== false) this.#revoked(was.user, id);
    }
  }

  /** The principal a bearer token stands for, or undefined. */
  authenticate(token: string): Principal | undefined {
    const verdict = this.verify(token);
    return verdict.ok ? verdict.principal : undefined;
  }

  /** What a bearer token stands for, or why it stands for nobody. Marks the token used. */
  verify(token: string): TokenVerdict {
    const entry = this.#byHash.get(hashToken(token));
    if (!entry) return { ok: false, reason: 'unknown' };
    const refused = (reason: TokenRefusal): TokenVerdict => ({
      ok: false,
      reason,
      tokenId: entry.id,
      user: entry.user,
    });
    if (entry.revoked) return refused('revoked');
    const now = this.#clock.now().getTime();
    if (entry.expiresAt !== null && now >= entry.expiresAt) return refused('expired');
    const user = this.#users.get(entry.user);
    if (!user) return refused('user-removed');
    if (!user.principal) return refused('user-disabled');
    if (entry.lastUsedAt === null || now - entry.lastUsedAt >= TOUCH_INTERVAL_MS) {
      entry.lastUsedAt = now;
      this.#track(this.#store.touchTokens([{ id: entry.id, at: new Date(now) }]));
    }
    return { ok: true, principal: user.principal, tokenId: entry.id, expiresAt: entry.expiresAt };
  }

  /** The principal of a known, enabled user (a client certificate names one), else undefined. */
  principalOfUser(name: string): Principal | undefined {
    return this.#users.get(name)?.principal;
  }

  /** The user, or undefined. */
  user(name: string): UserRecord | undefined {
    return this.#users.get(name)?.record;
  }

  /** Every user, by name. */
  listUsers(): UserRecord[] {
    return [...this.#users.values()].map((u) => u.record).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Creates a user; `ALREADY_EXISTS` when the name is taken. Names and roles are checked by the caller. */
  async addUser(input: NewUser): Promise<UserRecord> {
    const record: UserRecord = {
      name: input.name,
      role: input.role,
      runAs: input.runAs ?? null,
      disabled: false,
      createdAt: this.#clock.now(),
    };
    await this.#store.addUser(record);
    this.#setUserEntry(record);
    return record;
  }

  async setUser(name: string, changes: UserChanges): Promise<UserRecord> {
    const was = this.#users.get(name)?.record;
    const record = await this.#store.setUser(name, changes);
    this.#setUserEntry(record);
    if (was && weakened(was, record)) this.#revoked(name);
    return record;
  }

  /** Removes a user and revokes its tokens; its jobs stay. */
  async removeUser(name: string): Promise<UserRecord> {
    const { user, revoked } = await this.#store.removeUser(name, this.#clock.now());
    this.#users.delete(name);
    for (const token of revoked) {
      const entry = this.#byId.get(token.id);
      if (entry) entry.revoked = true;
    }
    this.#revoked(name);
    return user;
  }

  /**
   * Issues a token for a known user (`NOT_FOUND` otherwise). The token is returned once and never
   * kept: only its SHA-256 is stored. `revokeLabelled` revokes, in the same write, the user's live
   * tokens with the same label (the way `admin.token` is rotated). `beforeSave` gets the token
   * before its hash is stored, to hand it out first.
   */
  async issueToken(
    input: NewToken,
    options: { revokeLabelled?: boolean; beforeSave?: (token: string) => Promise<void> } = {},
  ): Promise<{ token: string; record: TokenRecord }> {
    if (!this.#users.has(input.user)) throw new JobworkerError('NOT_FOUND', `No user named ${input.user}`);
    const token = generateToken();
    const now = this.#clock.now();
    const label = input.label ?? null;
    const lifetime = input.lifetimeMs ?? null;
    const record: TokenRecord = {
      id: randomUUID(),
      user: input.user,
      label,
      sha256: hashToken(token),
      createdAt: now,
      lastUsedAt: null,
      expiresAt: lifetime === null ? null : new Date(now.getTime() + lifetime),
      revokedAt: null,
    };
    const revoke = options.revokeLabelled
      ? [...this.#byId.values()]
          .filter((t) => t.user === input.user && !t.revoked && t.label === label)
          .map((t) => t.id)
      : [];
    await options.beforeSave?.(token);
    await this.#store.addToken(record, revoke);
    for (const id of revoke) {
      const entry = this.#byId.get(id);
      if (entry) entry.revoked = true;
    }
    this.#addTokenEntry(record);
    for (const id of revoke) this.#revoked(input.user, id);
    return { token, record };
  }

  /** Tokens oldest first (never the secret), of one user when `user` is given. */
  listTokens(user?: string): Promise<TokenRecord[]> {
    return this.#store.listTokens(user === undefined ? {} : { user });
  }

  /** Revokes a token; refused from the next request on. `NOT_FOUND` for an unknown id. */
  async revokeToken(id: string): Promise<TokenRecord> {
    const record = await this.#store.revokeToken(id, this.#clock.now());
    const entry = this.#byId.get(id);
    if (entry) entry.revoked = true;
    this.#revoked(record.user, id);
    return record;
  }

  /**
   * How many times `user` itself lost power (disabled, removed, given another role) since this
   * directory opened: authentication stamps it on each call (`Caller.revision`), so that what a
   * call authorized before such a change does after it (`isStale`) is refused, past the streams
   * `onRevoked` ended. Never reset: a user removed and added again is not its old stamps.
   */
  revision(user: string): number {
    return this.#revisions.get(user) ?? 0;
  }

  /**
   * Whether what authorized `caller` is gone since it was authenticated: its user lost power
   * (`revision`), or its token was revoked, has expired (or is no longer known).
   */
  isStale(caller: Pick<Caller, 'user' | 'revision' | 'tokenId'>): boolean {
    if (caller.revision !== undefined && caller.revision !== this.revision(caller.user)) return true;
    if (caller.tokenId === undefined) return false;
    const token = this.#byId.get(caller.tokenId);
    if (token === undefined || token.revoked) return true;
    return token.expiresAt !== null && this.#clock.now().getTime() >= token.expiresAt;
  }

  #revoked(user: string, tokenId?: string): void {
    // First the revision (the token's own state is set already), then the streams: a call stamped
    // before is refused from here on (`isStale`), the streams open already end (`onRevoked`); both
    // in this turn of the event loop.
    if (tokenId === undefined) this.#revisions.set(user, this.revision(user) + 1);
    this.#onRevoked(user, tokenId);
  }

  /** Resolves once every `last_used_at` write started so far has ended. */
  async flush(): Promise<void> {
    while (this.#writes.size > 0) await Promise.all(this.#writes);
  }

  #setUserEntry(record: UserRecord): void {
    const principal = record.disabled
      ? undefined
      : Object.freeze({
          user: record.name,
          role: record.role,
          runAs: record.runAs,
          ...(record.isolation ? { isolation: record.isolation } : {}),
        });
    this.#users.set(record.name, { record, principal });
  }

  #addTokenEntry(token: TokenRecord): void {
    const entry: TokenEntry = {
      id: token.id,
      user: token.user,
      label: token.label,
      expiresAt: token.expiresAt?.getTime() ?? null,
      revoked: token.revokedAt !== null,
      lastUsedAt: token.lastUsedAt?.getTime() ?? null,
    };
    this.#byHash.set(token.sha256, entry);
    this.#byId.set(token.id, entry);
  }

  #track(write: Promise<void>): void {
    const tracked = write.catch(this.#onError).finally(() => this.#writes.delete(tracked));
    this.#writes.add(tracked);
  }
}

/**
 * Whether a user's change took power from what it authorized: removed (`now` undefined),
 * disabled, or given another role (a stream a viewer opened must not outlive its demotion from
 * admin, nor one of an admin's its promotion's undoing). Run-as, isolation and limits apply to the
 * jobs it starts, not to what it reads.
 */
function weakened(was: UserRecord, now: UserRecord | undefined): boolean {
  return now === undefined || (now.disabled && !was.disabled) || now.role !== was.role;
}
