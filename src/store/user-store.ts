import type { Role } from '../auth/principal.ts';
import type { AuditEntry } from '../core/audit.ts';
import type { JobIsolation } from '../core/job.ts';
import type { LimitSettings } from '../core/limits.ts';

/** A user as stored. */
export interface UserRecord {
  readonly name: string;
  readonly role: Role;
  /** The OS account its jobs run as; null when none is set. */
  readonly runAs: string | null;
  /** A disabled user's tokens and certificates authenticate nobody until it is enabled again. */
  readonly disabled: boolean;
  readonly createdAt: Date;
  /** Defaults and maxima of its jobs' resource limits, set by an admin; absent: none. */
  readonly limits?: LimitSettings;
  /**
   * The namespaces the user's jobs run in when neither their spec nor their queue names any
   * (docs/isolation.md); null or absent for none.
   */
  readonly isolation?: JobIsolation | null;
}

/** What `setUser` may change; an absent field is left as it is. */
export interface UserChanges {
  readonly role?: Role;
  readonly runAs?: string | null;
  readonly disabled?: boolean;
  /** Replaces its limit defaults and maxima. */
  readonly limits?: LimitSettings;
  readonly isolation?: JobIsolation | null;
}

/** A token as stored: its SHA-256, never the token itself. */
export interface TokenRecord {
  readonly id: string;
  readonly user: string;
  readonly label: string | null;
  readonly sha256: string;
  readonly createdAt: Date;
  /** Written at most once a minute per token, so it is a minute stale at worst. */
  readonly lastUsedAt: Date | null;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

/** An audit entry as listed: with its id, which orders entries newest first. */
export interface AuditRecord extends AuditEntry {
  readonly id: string;
}

export interface AuditQuery {
  readonly user?: string;
  readonly action?: string;
  /** Entries at or after this time. */
  readonly since?: Date;
  /** Entries strictly before this time. */
  readonly until?: Date;
  /** Page size, 1 to 1000. */
  readonly limit: number;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
}

export interface AuditPage {
  readonly entries: AuditRecord[];
  /** Pass back as `cursor` for the next, older page; null on the last one. */
  readonly nextCursor: string | null;
}

/**
 * Users, tokens and the audit trail, named by what the server does with them. Every method is one
 * transaction. Checks that need the whole table (the last enabled admin) are made inside it, so
 * two concurrent changes cannot both pass them.
 */
export interface UserStore {
  /** `ALREADY_EXISTS` when the name is taken. With `token`, the user's first token in the same step. */
  addUser(user: UserRecord, token?: TokenRecord): Promise<void>;
  listUsers(): Promise<UserRecord[]>;
  /** `NOT_FOUND`; `LAST_ADMIN` when the change would leave no enabled admin. */
  setUser(name: string, changes: UserChanges): Promise<UserRecord>;
  /** Deletes the user and revokes its tokens at `at`; `NOT_FOUND`, `LAST_ADMIN`. Jobs are untouched. */
  removeUser(name: string, at: Date): Promise<{ user: UserRecord; revoked: TokenRecord[] }>;
  /** Stores a token; the ids in `revoke` are revoked at its `createdAt` in the same step. */
  addToken(token: TokenRecord, revoke?: readonly string[]): Promise<void>;
  /** Tokens oldest first, revoked ones included; of one user when `user` is given. */
  listTokens(query?: { readonly user?: string }): Promise<TokenRecord[]>;
  /** Revokes a token at `at` (a revoked one stays as it was); `NOT_FOUND` for an unknown id. */
  revokeToken(id: string, at: Date): Promise<TokenRecord>;
  /** Records when tokens were last used, many in one write. */
  touchTokens(uses: readonly { readonly id: string; readonly at: Date }[]): Promise<void>;
  /**
   * Adds users and tokens carried over from elsewhere (tokens.json): those whose name, id or hash
   * is already stored are skipped, so a repeated import changes nothing. One transaction.
   */
  importUsers(users: readonly UserRecord[], tokens: readonly TokenRecord[]): Promise<void>;
  appendAudit(entries: readonly AuditEntry[]): Promise<void>;
  /** Newest first. */
  listAudit(query: AuditQuery): Promise<AuditPage>;
}
