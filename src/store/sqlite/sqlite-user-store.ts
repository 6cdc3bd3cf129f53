import type { Kysely, Transaction } from 'kysely';
import type { AuditEntry } from '../../core/audit.ts';
import { AlreadyExistsError, JobworkerError, LastAdminError } from '../../core/errors.ts';
import { listAuditIn } from '../audit-query.ts';
import type { StoreSchema, UserRow } from '../schema.ts';
import {
  auditToRow,
  changedUserRow,
  isEnabledAdmin,
  rowToToken,
  rowToUser,
  tokenToRow,
  userChangeColumns,
  userToRow,
} from '../user-row.ts';
import type {
  AuditPage,
  AuditQuery,
  TokenRecord,
  UserChanges,
  UserRecord,
  UserStore,
} from '../user-store.ts';
import { insertRow } from './compiled-statements.ts';

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
      const next = changedUserRow(current, changes);
      if (isEnabledAdmin(current) && !isEnabledAdmin(next) && (await enabledAdmins(trx)) <= 1) {
        throw new LastAdminError(name, next.disabled === 1 ? 'disable' : 'change the role of');
      }
      await trx.updateTable('users').set(userChangeColumns(next)).where('name', '=', name).execute();
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
      // Looked for in the transaction that adds it: a token of a user removed meanwhile would stay
      // unrevoked, and authenticate a later user of the same name.
      if (!(await getUser(trx, token.user))) throw noSuchUser(token.user);
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
    // One transaction per batch, a row at a time through one compiled statement: Kysely's
    // multi-row insert parsed every value of the batch, which cost more than the inserts.
    await this.#db.transaction().execute(async (trx) => {
      for (const entry of entries) await insertRow(trx, 'audit', auditToRow(entry));
    });
  }

  listAudit(query: AuditQuery): Promise<AuditPage> {
    return listAuditIn(this.#db, query);
  }
}

function noSuchUser(name: string): JobworkerError {
  return new JobworkerError('NOT_FOUND', `No user named ${name}`);
}

function getUser(db: Db, name: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
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
