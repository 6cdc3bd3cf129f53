import { ValidationError } from '../core/errors.ts';
import { ROLES, type Role, TOKENLESS_USER } from './principal.ts';

/**
 * A user name: what jobs record as their owner and certificates name. Letters, digits and
 * `_ . @ -`, starting with a letter or digit, 1 to 64 characters: safe in a URL path, a log line,
 * a certificate's URI SAN and a table cell. A name that starts with `_` is jobworker's own
 * (`TOKENLESS_USER`): no real user may take it, so nothing of a real user's is ever its.
 */
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

/** An OS account name as useradd(8) takes it (1 to 32 characters), or a numeric uid. */
const ACCOUNT_NAME = /^(?:[a-z_][a-z0-9_-]{0,30}[a-z0-9_$-]?|[0-9]{1,10})$/;

/** Printable, no control characters, 1 to 100 characters. */
const LABEL = /^[^\p{Cc}]{1,100}$/u;

/** The longest a token may live: ten years. */
export const MAX_TOKEN_LIFETIME_MS = 3650 * 86_400_000;

const LIFETIME = /^([0-9]{1,7})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * A name the audit trail may be filtered by: a user's, or one of jobworker's own principals
 * (`TOKENLESS_USER`), which act and are audited but are no user.
 */
export function checkAuditUserName(value: unknown, field = 'user'): string {
  return value === TOKENLESS_USER ? value : checkUserName(value, field);
}

export function checkUserName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string' || !USER_NAME.test(value)) {
    throw ValidationError.expected(
      field,
      'a user name: 1 to 64 letters, digits, `_`, `.`, `@` or `-`, starting with a letter or digit',
      value,
    );
  }
  return value;
}

export function checkRole(value: unknown, field = 'role'): Role {
  if (typeof value !== 'string' || !ROLES.includes(value as Role)) {
    throw ValidationError.expected(field, `one of ${ROLES.join(', ')}`, value);
  }
  return value as Role;
}

/** An OS account name, or null for none. */
export function checkRunAs(value: unknown, field = 'runAs'): string | null {
  if (value === null) return null;
  if (typeof value !== 'string' || !ACCOUNT_NAME.test(value)) {
    throw ValidationError.expected(
      field,
      'an OS account name (lower-case letters, digits, `_` and `-`, at most 32) or a numeric uid, or null',
      value,
    );
  }
  return value;
}

export function checkLabel(value: unknown, field = 'label'): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !LABEL.test(value)) {
    throw ValidationError.expected(field, 'a label of 1 to 100 printable characters', value);
  }
  return value;
}

/** `30d`, `12h`, `90m`, `3600s` as milliseconds, from one second to ten years. */
export function parseTokenLifetime(value: unknown, field = 'expiresIn'): number {
  const match = typeof value === 'string' ? LIFETIME.exec(value) : null;
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : Number.NaN;
  if (!(ms >= 1000 && ms <= MAX_TOKEN_LIFETIME_MS)) {
    throw ValidationError.expected(field, 'a lifetime such as 30d, 12h, 90m or 3600s, at most 3650d', value);
  }
  return ms;
}
