import type { Kysely, Transaction } from 'kysely';
import type { Role } from '../../auth/principal.ts';
import type { AuditAction, AuditEntry } from '../../core/audit.ts';
import { AlreadyExistsError, JobworkerError, LastAdminError, ValidationError } from '../../core/errors.ts';
import type { JobIsolation } from '../../core/job.ts';
import { NO_LIMIT_SETTINGS } from '../../core/limits.ts';
import { limitColumns, limitsOfColumns } from '../limit-columns.ts';
import type { AuditRow, StoreSchema, TokenRow, UserRow } from '../schema.ts';
import type {
  AuditPage,
  AuditQuery,
  AuditRecord,
  TokenRecord,
  UserChanges,
  UserRecord,
  UserStore,
} from '../user-store.ts';

type Db = Kysely<StoreSchema> | Transaction<StoreSchema>;

/**
 * Users, tokens and the audit trail in the job database (`SqliteJobStore.users`): the same
 * connection, so its transactions are serialized with the job store's.
 */
export class SqliteUserStore implements UserStore {
  readonly #db: Kysely<StoreSchema>;

  constructor(db: Kysely<StoreSchema>) {
    this.#db = db;
  }

  async addUser(user: UserRecord, token?: TokenRecord): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const existing = await getUser(trx, user.name);
      if (existing) throw new AlreadyExistsError('name', `A user named ${user.name} already exists`);
      await trx.insertInto('users').values(userToRow(user)).execute();
      if (token) await trx.insertInto('tokens').values(tokenToRow(token)).execute();
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    const rows = await this.#db.selectFrom('users').selectAll().orderBy('name').execute();
    return rows.map(rowToUser);
  }

  async setUser(name: string, changes: UserChanges): Promise<UserRecord> {
    return this.#db.transaction().execute(async (trx) => {
      const current = await getUser(trx, name);
      if (!current) throw noSuchUser(name);
      const next: UserRow = {
        ...current,
        ...(changes.role === undefined ? {} : { role: changes.role }),
        ...(changes.runAs === undefined ? {} : { run_as: changes.runAs }),
        ...(changes.disabled === undefined ? {} : { disabled: changes.disabled ? 1 : 0 }),
        ...(changes.limits === undefined ? {} : limitColumns(changes.limits)),
        ...(changes.isolation === undefined
          ? {}
          : { isolation: changes.isolation && JSON.stringify(changes.isolation) }),
      };
      if (isEnabledAdmin(current) && !isEnabledAdmin(next) && (await enabledAdmins(trx)) <= 1) {
        throw new LastAdminError(name, next.disabled === 1 ? 'disable' : 'change the role of');
      }
      await trx
        .updateTable('users')
        .set({ role: next.role, run_as: next.run_as, disabled: next.disabled, isolation: next.isolation })
        .where('name', '=', name)
        .execute();
      return rowToUser(next);
    });
  }

  async removeUser(name: string, at: Date): Promise<{ user: UserRecord; revoked: TokenRecord[] }> {
    return this.#db.transaction().execute(async (trx) => {
      const current = await getUser(trx, name);
      if (!current) throw noSuchUser(name);
      if (isEnabledAdmin(current) && (await enabledAdmins(trx)) <= 1)
        throw new LastAdminError(name, 'remove');
      const revoked = await trx
        .updateTable('tokens')
        .set({ revoked_at: at.getTime() })
        .where('user', '=', name)
        .where('revoked_at', 'is', null)
        .returningAll()
        .execute();
      await trx.deleteFrom('users').where('name', '=', name).execute();
      return { user: rowToUser(current), revoked: revoked.map(rowToToken) };
    });
  }

  async addToken(token: TokenRecord, revoke: readonly string[] = []): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      if (revoke.length > 0) {
        await trx
          .updateTable('tokens')
          .set({ revoked_at: token.createdAt.getTime() })
          .where('id', 'in', revoke)
          .where('revoked_at', 'is', null)
          .execute();
      }
      await trx.insertInto('tokens').values(tokenToRow(token)).execute();
    });
  }

  async listTokens(query: { readonly user?: string } = {}): Promise<TokenRecord[]> {
    let select = this.#db.selectFrom('tokens').selectAll();
    if (query.user !== undefined) select = select.where('user', '=', query.user);
    const rows = await select.orderBy('created_at').orderBy('id').execute();
    return rows.map(rowToToken);
  }

  async revokeToken(id: string, at: Date): Promise<TokenRecord> {
    return this.#db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new JobworkerError('NOT_FOUND', `No token with id ${id}`);
      if (row.revoked_at !== null) return rowToToken(row);
      await trx.updateTable('tokens').set({ revoked_at: at.getTime() }).where('id', '=', id).execute();
      return rowToToken({ ...row, revoked_at: at.getTime() });
    });
  }

  async touchTokens(uses: readonly { readonly id: string; readonly at: Date }[]): Promise<void> {
    if (uses.length === 0) return;
    await this.#db.transaction().execute(async (trx) => {
      for (const { id, at } of uses) {
        await trx.updateTable('tokens').set({ last_used_at: at.getTime() }).where('id', '=', id).execute();
      }
    });
  }

  async importUsers(users: readonly UserRecord[], tokens: readonly TokenRecord[]): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      for (const user of users) {
        await trx
          .insertInto('users')
          .values(userToRow(user))
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
      for (const token of tokens) {
        await trx
          .insertInto('tokens')
          .values(tokenToRow(token))
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
    });
  }

  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    // One statement per batch of up to 100 rows (9 parameters each, under SQLite's 32766).
    await this.#db.transaction().execute(async (trx) => {
      for (let i = 0; i < entries.length; i += 100) {
        await trx
          .insertInto('audit')
          .values(entries.slice(i, i + 100).map(auditToRow))
          .execute();
      }
    });
  }

  async listAudit(query: AuditQuery): Promise<AuditPage> {
    const limit = query.limit;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
      throw ValidationError.expected('limit', 'an integer from 1 to 1000', limit);
    }
    let select = this.#db.selectFrom('audit').selectAll();
    if (query.user !== undefined) select = select.where('user', '=', query.user);
    if (query.action !== undefined) select = select.where('action', '=', query.action);
    if (query.since !== undefined) select = select.where('at', '>=', query.since.getTime());
    if (query.until !== undefined) select = select.where('at', '<', query.until.getTime());
    if (query.cursor !== undefined) {
      if (!/^[1-9][0-9]{0,15}$/.test(query.cursor)) {
        throw ValidationError.expected('cursor', 'the `nextCursor` of a previous page', query.cursor);
      }
      select = select.where('id', '<', Number(query.cursor));
    }
    const rows = await select
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
    const entries = rows.slice(0, limit).map(rowToAudit);
    return {
      entries,
      nextCursor: rows.length > limit ? (entries[entries.length - 1]?.id ?? null) : null,
    };
  }
}

function noSuchUser(name: string): JobworkerError {
  return new JobworkerError('NOT_FOUND', `No user named ${name}`);
}

function getUser(db: Db, name: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
}

function isEnabledAdmin(row: Pick<UserRow, 'role' | 'disabled'>): boolean {
  return row.role === 'admin' && row.disabled === 0;
}

async function enabledAdmins(db: Db): Promise<number> {
  const { n } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('role', '=', 'admin')
    .where('disabled', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(n);
}

function userToRow(user: UserRecord): UserRow {
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

function rowToUser(row: UserRow): UserRecord {
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

function tokenToRow(token: TokenRecord): TokenRow {
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

function rowToToken(row: TokenRow): TokenRecord {
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

function auditToRow(entry: AuditEntry): Omit<AuditRow, 'id'> {
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

function rowToAudit(row: { id: number } & Omit<AuditRow, 'id'>): AuditRecord {
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
