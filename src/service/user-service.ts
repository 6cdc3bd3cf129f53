import {
  checkAuditUserName,
  checkLabel,
  checkRole,
  checkRunAs,
  checkUserName,
  parseTokenLifetime,
} from '../auth/account-input.ts';
import type { Caller, Principal, Role } from '../auth/principal.ts';
import type { UserDirectory } from '../auth/user-directory.ts';
import { AUDIT_ACTIONS, type AuditAction } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ValidationError } from '../core/errors.ts';
import { normalizeIsolation } from '../core/isolation.ts';
import { NO_LIMIT_SETTINGS, normalizeLimitSettings } from '../core/limits.ts';
import type { AuditPage, TokenRecord, UserChanges, UserRecord } from '../store/user-store.ts';
import type { AuditLog } from './audit-log.ts';
import { type AuditContext, auditedCall } from './audited-call.ts';
import { requireAdmin } from './require-admin.ts';

/** Page size of the audit list when the caller names none. */
const DEFAULT_AUDIT_PAGE = 50;
const MAX_AUDIT_PAGE = 1000;
const TOKEN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether a token works now, as far as the token itself goes (its user may still be disabled). */
export type TokenState = 'active' | 'expired' | 'revoked';

/** A token as listed: the stored record (never the secret) and its state now. */
export interface TokenView extends TokenRecord {
  readonly state: TokenState;
}

/** A filter of the audit trail as an adapter received it (strings, checked here). */
export interface AuditRequest {
  readonly user?: string;
  readonly action?: string;
  /** ISO 8601 times. */
  readonly since?: string;
  readonly until?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/**
 * Users, tokens and the audit trail, for every adapter: admins only. Each change is checked
 * (names, roles, the last enabled admin), made in one store transaction (nothing half-created),
 * applied to authentication at once, and recorded in the audit trail, refused attempts included.
 */
export class UserService {
  readonly #accounts: UserDirectory;
  readonly #log: AuditLog;
  readonly #audit: AuditContext;
  readonly #clock: Clock;
  readonly #checkRunAs: ((name: string, role: Role) => Promise<void>) | undefined;
  readonly #onUserRemoved: ((name: string, who: Caller) => Promise<void>) | undefined;
  readonly #usedBefore: ((name: string) => Promise<boolean>) | undefined;

  constructor(
    accounts: UserDirectory,
    log: AuditLog,
    options: {
      clock?: Clock;
      /**
       * Refuses a run-as account the server could never run the user's jobs as (see
       * `JobAccounts.checkRunAs`); absent: any well-formed name is kept.
       */
      checkRunAs?: (name: string, role: Role) => Promise<void>;
      /**
       * Called after a user is removed, before the removal answers: revokes what else names the
       * user (its client certificates), which would otherwise work again for anyone later given
       * the same name.
       */
      onUserRemoved?: (name: string, who: Caller) => Promise<void>;
      /**
       * Whether a user of this name left something a new user of the name would get: jobs in the
       * history, a pool account (its uid and home are kept). Giving such a name takes `reuseName`.
       * Absent: not asked.
       */
      usedBefore?: (name: string) => Promise<boolean>;
    } = {},
  ) {
    this.#accounts = accounts;
    this.#log = log;
    this.#clock = options.clock ?? systemClock;
    this.#checkRunAs = options.checkRunAs;
    this.#onUserRemoved = options.onUserRemoved;
    this.#usedBefore = options.usedBefore;
    this.#audit = { sink: log, clock: this.#clock };
  }

  listUsers(who: Principal): UserRecord[] {
    requireAdmin(who, 'list users');
    return this.#accounts.listUsers();
  }

  /**
   * `{name, role, runAs?, reuseName?}`; `ALREADY_EXISTS` when the name is taken. The name of a
   * user removed that left jobs in the history or a pool account is refused unless `reuseName` is
   * true: they belong to a name, and the new user would own them.
   */
  addUser(who: Caller, input: unknown): Promise<UserRecord> {
    const body = record(input);
    const target = typeof body.name === 'string' ? body.name : null;
    return auditedCall(this.#audit, who, 'user:add', target, async () => {
      requireAdmin(who, 'add users');
      const name = checkUserName(body.name);
      const role = checkRole(body.role);
      const runAs = body.runAs === undefined ? null : checkRunAs(body.runAs);
      if (body.reuseName !== undefined && typeof body.reuseName !== 'boolean')
        throw ValidationError.expected('reuseName', 'a boolean', body.reuseName);
      if (runAs !== null) await this.#checkRunAs?.(runAs, role);
      // Read before the user's own state, which may change meanwhile: a name taken after the
      // look is ALREADY_EXISTS from the store, whatever its history.
      const usedBefore = body.reuseName !== true && (await this.#usedBefore?.(name)) === true;
      if (usedBefore && this.#accounts.user(name) === undefined) {
        throw new ValidationError(
          'name',
          `A user named ${name}, removed since, left jobs in the history or a pool account (its uid and ` +
            'home): a new user of that name would own them and read their output. Choose another name, ' +
            'or give them to the new user with `reuseName: true` (`jobworker user add --reuse-name`)',
        );
      }
      return this.#accounts.addUser({ name, role, runAs });
    });
  }

  /**
   * `{role?, disabled?, runAs?, defaultLimits?, maxLimits?, isolation?}`; `LAST_ADMIN` when it
   * would leave no enabled admin. The limits are written as a spec's (units allowed) and replace
   * the user's; `null` or `{}` clears them. `isolation` (null clears it) is the user's default.
   */
  setUser(who: Caller, name: string, input: unknown): Promise<UserRecord> {
    return auditedCall(this.#audit, who, 'user:set', name, async () => {
      requireAdmin(who, 'change users');
      checkUserName(name);
      const body = record(input);
      const changes: { -readonly [K in keyof UserChanges]: UserChanges[K] } = {};
      if (body.role !== undefined) changes.role = checkRole(body.role);
      if (body.runAs !== undefined) changes.runAs = checkRunAs(body.runAs);
      if (body.isolation !== undefined) {
        changes.isolation = body.isolation === null ? null : normalizeIsolation(body.isolation, 'isolation');
      }
      if (body.disabled !== undefined) {
        if (typeof body.disabled !== 'boolean')
          throw ValidationError.expected('disabled', 'a boolean', body.disabled);
        changes.disabled = body.disabled;
      }
      if (body.defaultLimits !== undefined || body.maxLimits !== undefined) {
        const current = this.#accounts.user(name)?.limits ?? NO_LIMIT_SETTINGS;
        const { defaults, maxima } = normalizeLimitSettings({
          // Absent: kept; null or {}: cleared (normalizeLimitSettings reads null as none).
          defaultLimits: body.defaultLimits !== undefined ? body.defaultLimits : current.defaults,
          maxLimits: body.maxLimits !== undefined ? body.maxLimits : current.maxima,
        });
        changes.limits = { defaults: defaults ?? {}, maxima: maxima ?? {} };
      }
      const existing = this.#accounts.user(name);
      const runAs = changes.runAs !== undefined ? changes.runAs : existing?.runAs;
      if (existing && runAs && (changes.runAs !== undefined || changes.role !== undefined)) {
        await this.#checkRunAs?.(runAs, changes.role ?? existing.role);
      }
      return this.#accounts.setUser(name, changes);
    });
  }

  /**
   * Removes a user and revokes its tokens and (through `onUserRemoved`) its client certificates;
   * its jobs stay in the history.
   */
  removeUser(who: Caller, name: string): Promise<UserRecord> {
    return auditedCall(this.#audit, who, 'user:remove', name, async () => {
      requireAdmin(who, 'remove users');
      checkUserName(name);
      const removed = await this.#accounts.removeUser(name);
      await this.#onUserRemoved?.(name, who);
      return removed;
    });
  }

  /** Tokens oldest first, never the secret; of one user when `user` is given. */
  async listTokens(who: Principal, user?: string): Promise<TokenView[]> {
    requireAdmin(who, 'list tokens');
    if (user !== undefined) checkUserName(user, 'user');
    return (await this.#accounts.listTokens(user)).map((t) => this.#view(t));
  }

  /**
   * `{user, label?, expiresIn?}`: issues a token for a known user. The answer is the only place
   * the token ever appears; the store keeps its SHA-256.
   */
  createToken(who: Caller, input: unknown): Promise<{ token: string; record: TokenView }> {
    const body = record(input);
    return auditedCall(
      this.#audit,
      who,
      'token:create',
      (issued) => issued?.record.id ?? (typeof body.user === 'string' ? body.user : null),
      () => {
        requireAdmin(who, 'create tokens');
        const user = checkUserName(body.user, 'user');
        const label = checkLabel(body.label);
        const lifetimeMs = body.expiresIn === undefined ? null : parseTokenLifetime(body.expiresIn);
        return this.#accounts
          .issueToken({ user, label, lifetimeMs })
          .then(({ token, record }) => ({ token, record: this.#view(record) }));
      },
    );
  }

  revokeToken(who: Caller, id: string): Promise<TokenView> {
    return auditedCall(this.#audit, who, 'token:revoke', id, () => {
      requireAdmin(who, 'revoke tokens');
      if (!TOKEN_ID.test(id))
        throw ValidationError.expected('id', 'a token id (a UUID, see `token list`)', id);
      return this.#accounts.revokeToken(id).then((t) => this.#view(t));
    });
  }

  #view(token: TokenRecord): TokenView {
    const state: TokenState =
      token.revokedAt !== null
        ? 'revoked'
        : token.expiresAt !== null && token.expiresAt <= this.#clock.now()
          ? 'expired'
          : 'active';
    return { ...token, state };
  }

  /** One page of the audit trail, newest first. */
  async listAudit(who: Principal, request: AuditRequest): Promise<AuditPage> {
    requireAdmin(who, 'read the audit trail');
    const limit = request.limit ?? DEFAULT_AUDIT_PAGE;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) {
      throw ValidationError.expected('limit', `an integer from 1 to ${MAX_AUDIT_PAGE}`, limit);
    }
    if (request.user !== undefined) checkAuditUserName(request.user, 'user');
    if (request.action !== undefined && !AUDIT_ACTIONS.includes(request.action as AuditAction)) {
      throw ValidationError.expected('action', `one of ${AUDIT_ACTIONS.join(', ')}`, request.action);
    }
    const since = request.since === undefined ? undefined : time('since', request.since);
    const until = request.until === undefined ? undefined : time('until', request.until);
    return this.#log.list({
      limit,
      ...(request.user === undefined ? {} : { user: request.user }),
      ...(request.action === undefined ? {} : { action: request.action }),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(request.cursor === undefined ? {} : { cursor: request.cursor }),
    });
  }
}

function record(input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw ValidationError.expected('body', 'a JSON object', input);
  }
  return input as Record<string, unknown>;
}

function time(field: string, text: string): Date {
  const at = new Date(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(at.getTime())) {
    throw ValidationError.expected(field, 'an ISO 8601 time such as 2025-01-31T12:00:00Z', text);
  }
  return at;
}
