import type { Role } from '../auth/principal.ts';
import type { AuditAction, AuditEntry } from '../core/audit.ts';
import { ValidationError } from '../core/errors.ts';
import type { JobIsolation } from '../core/job.ts';
import { NO_LIMIT_SETTINGS } from '../core/limits.ts';
import { limitColumns, limitsOfColumns } from './limit-columns.ts';
import type { AuditRow, TokenRow, UserRow } from './schema.ts';
import type { AuditQuery, AuditRecord, TokenRecord, UserChanges, UserRecord } from './user-store.ts';

/**
 * The mapping between users, tokens and audit entries and their rows, shared by the SQLite and the
 * PostgreSQL user stores (both keep the same columns: see store/schema.ts).
 */

export function userToRow(user: UserRecord): UserRow {
  return {
    name: user.name,
    role: user.role,
    run_as: user.runAs,
    disabled: user.disabled ? 1 : 0,
    created_at: user.createdAt.getTime(),
    ...limitColumns(user.limits ?? NO_LIMIT_SETTINGS),
    isolation: user.isolation ? JSON.stringify(user.isolation) : null,
  };
}

export function rowToUser(row: UserRow): UserRecord {
  return {
    name: row.name,
    role: row.role as Role,
    runAs: row.run_as,
    disabled: row.disabled === 1,
    createdAt: new Date(row.created_at),
    limits: limitsOfColumns(row),
    isolation: row.isolation === null ? null : (JSON.parse(row.isolation) as JobIsolation),
  };
}

/** The row `current` becomes with `changes` applied (absent fields left as they are). */
export function changedUserRow(current: UserRow, changes: UserChanges): UserRow {
  return {
    ...current,
    ...(changes.role === undefined ? {} : { role: changes.role }),
    ...(changes.runAs === undefined ? {} : { run_as: changes.runAs }),
    ...(changes.disabled === undefined ? {} : { disabled: changes.disabled ? 1 : 0 }),
    ...(changes.limits === undefined ? {} : limitColumns(changes.limits)),
    ...(changes.isolation === undefined
      ? {}
      : { isolation: changes.isolation ? JSON.stringify(changes.isolation) : null }),
  };
}

/** What an update of `users` writes for a changed row (the key and creation time never change). */
export function userChangeColumns(row: UserRow): Omit<UserRow, 'name' | 'created_at'> {
  return {
    role: row.role,
    run_as: row.run_as,
    disabled: row.disabled,
    default_limits: row.default_limits,
    max_limits: row.max_limits,
    isolation: row.isolation,
  };
}

export function isEnabledAdmin(row: Pick<UserRow, 'role' | 'disabled'>): boolean {
  return row.role === 'admin' && row.disabled === 0;
}

export function tokenToRow(token: TokenRecord): TokenRow {
  return {
    id: token.id,
    user: token.user,
    label: token.label,
    sha256: token.sha256,
    created_at: token.createdAt.getTime(),
    last_used_at: token.lastUsedAt?.getTime() ?? null,
    expires_at: token.expiresAt?.getTime() ?? null,
    revoked_at: token.revokedAt?.getTime() ?? null,
  };
}

export function rowToToken(row: TokenRow): TokenRecord {
  const date = (ms: number | null) => (ms === null ? null : new Date(ms));
  return {
    id: row.id,
    user: row.user,
    label: row.label,
    sha256: row.sha256,
    createdAt: new Date(row.created_at),
    lastUsedAt: date(row.last_used_at),
    expiresAt: date(row.expires_at),
    revokedAt: date(row.revoked_at),
  };
}

export function auditToRow(entry: AuditEntry): Omit<AuditRow, 'id'> {
  return {
    at: entry.at.getTime(),
    user: entry.user,
    role: entry.role,
    source: entry.source,
    transport: entry.transport,
    action: entry.action,
    target: entry.target,
    result: entry.result,
  };
}

export function rowToAudit(row: { id: number } & Omit<AuditRow, 'id'>): AuditRecord {
  return {
    id: String(row.id),
    at: new Date(row.at),
    user: row.user,
    role: row.role,
    source: row.source,
    transport: row.transport,
    action: row.action as AuditAction,
    target: row.target,
    result: row.result,
  };
}

/** Checks an audit query's page size and cursor; returns the id the page starts below, if any. */
export function checkAuditQuery(query: AuditQuery): number | undefined {
  const limit = query.limit;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
    throw ValidationError.expected('limit', 'an integer from 1 to 1000', limit);
  }
  if (query.cursor === undefined) return undefined;
  if (!/^[1-9][0-9]{0,15}$/.test(query.cursor)) {
    throw ValidationError.expected('cursor', 'the `nextCursor` of a previous page', query.cursor);
  }
  return Number(query.cursor);
}
