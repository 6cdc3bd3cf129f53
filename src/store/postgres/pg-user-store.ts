import { type Kysely, sql, type Transaction } from 'kysely';
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
import { pgStoreError } from './pg-storage-error.ts';

type Trx = Transaction<StoreSchema>;

/** Rows per insert statement: far under PostgreSQL's 65,535 parameters at 9 columns a row. */
const ROWS_PER_INSERT = 500;

/**
 * Users, tokens and the audit trail in PostgreSQL (migration 0002-users), shared by every node of
 * a cluster.
 *
 * The last-enabled-admin check reads a set of rows (the enabled admins) that a transaction on
 * another node may change at the same time: under READ COMMITTED, "disable a" and "disable b" would
 * each still see the other admin and both commit. So `setUser` and `removeUser` first lock the
 * `users` table in SHARE ROW EXCLUSIVE mode, which conflicts with itself and with every write to
 * `users` but not with reads: the check and the write run with the table fixed, one such change
 * at a time across the cluster, while authentication and listings go on. Row locks on the admin
 * rows would need a careful lock order to avoid deadlocks, and SERIALIZABLE would need every
 * caller to retry serialization failures; user changes are rare admin actions, so queueing them
 * costs nothing.
 */
export class PgUserStore implements UserStore {
  readonly #db: Kysely<StoreSchema>;
  /** The database's URL, named (password hidden) in the errors `pgStoreError` makes. */
  readonly #url: string;

  constructor(db: Kysely<StoreSchema>, url: string) {
    this.#db = db;
    this.#url = url;
  }

  /**
   * Runs `work`, reporting a full disk or a lost database as such (see `pgStoreError`), as the job
   * store does: creating a user or a token while PostgreSQL is down is 503, not 500.
   */
  async #run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw pgStoreError(error, this.#url);
    }
  }

  async addUser(user: UserRecord, token?: TokenRecord): Promise<void> {
    return this.#run(async () => {
      await this.#db.transaction().execute(async (trx) => {
        // `on conflict do nothing` rather than a look first: two nodes adding the same name at once
        // would otherwise both pass the look and one fail on the key with a raw driver error.
        const added = await trx
          .insertInto('users')
          .values(userToRow(user))
          .onConflict((oc) => oc.column('name').doNothing())
          .returning('name')
          .executeTakeFirst();
        if (!added) throw new AlreadyExistsError('name', `A user named ${user.name} already exists`);
        if (token) await trx.insertInto('tokens').values(tokenToRow(token)).execute();
      });
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.#run(async () => {
      const rows = await this.#db.selectFrom('users').selectAll().orderBy('name').execute();
      return rows.map(rowToUser);
    });
  }

  async setUser(name: string, changes: UserChanges): Promise<UserRecord> {
    return this.#run(() =>
      this.#db.transaction().execute(async (trx) => {
        await lockUsers(trx);
        const current = await getUser(trx, name);
        if (!current) throw noSuchUser(name);
        const next = changedUserRow(current, changes);
        if (isEnabledAdmin(current) && !isEnabledAdmin(next) && (await enabledAdmins(trx)) <= 1) {
          throw new LastAdminError(name, next.disabled === 1 ? 'disable' : 'change the role of');
        }
        await trx.updateTable('users').set(userChangeColumns(next)).where('name', '=', name).execute();
        return rowToUser(next);
      }),
    );
  }

  async removeUser(name: string, at: Date): Promise<{ user: UserRecord; revoked: TokenRecord[] }> {
    return this.#run(() =>
      this.#db.transaction().execute(async (trx) => {
        await lockUsers(trx);
        // `for update`: a token being added holds the row `for share` (`addToken`); its commit is
        // waited for, so that the revocation below sees it.
        const current = await getUser(trx, name, 'update');
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
      }),
    );
  }

  async addToken(token: TokenRecord, revoke: readonly string[] = []): Promise<void> {
    return this.#run(async () => {
      await this.#db.transaction().execute(async (trx) => {
        // The user's row held `for share` until the commit: a removal (which holds it `for update`
        // before it revokes) waits for this token and revokes it too, or removed the user first and
        // this finds none. A token of a user removed meanwhile would stay unrevoked, and
        // authenticate a later user of the same name.
        const user = await trx
          .selectFrom('users')
          .select('name')
          .where('name', '=', token.user)
          .forShare()
          .executeTakeFirst();
        if (!user) throw noSuchUser(token.user);
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
    });
  }

  async listTokens(query: { readonly user?: string } = {}): Promise<TokenRecord[]> {
    return this.#run(async () => {
      let select = this.#db.selectFrom('tokens').selectAll();
      if (query.user !== undefined) select = select.where('user', '=', query.user);
      const rows = await select.orderBy('created_at').orderBy('id').execute();
      return rows.map(rowToToken);
    });
  }

  async revokeToken(id: string, at: Date): Promise<TokenRecord> {
    return this.#run(async () => {
      // One conditional update: of two nodes revoking at once, the first time wins and stays.
      const revoked = await this.#db
        .updateTable('tokens')
        .set({ revoked_at: at.getTime() })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (revoked) return rowToToken(revoked);
      const row = await this.#db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new JobworkerError('NOT_FOUND', `No token with id ${id}`);
      return rowToToken(row);
    });
  }

  async touchTokens(uses: readonly { readonly id: string; readonly at: Date }[]): Promise<void> {
    return this.#run(async () => {
      if (uses.length === 0) return;
      const latest = new Map<string, number>();
      for (const { id, at } of uses) latest.set(id, Math.max(latest.get(id) ?? 0, at.getTime()));
      const ids = [...latest.keys()].sort();
      await this.#db.transaction().execute(async (trx) => {
        // Locked in id order first: two nodes touching the same tokens in one update each could
        // otherwise lock them in opposite orders and deadlock.
        await trx
          .selectFrom('tokens')
          .select('id')
          .where('id', 'in', ids)
          .orderBy('id')
          .forUpdate()
          .execute();
        const values = sql.join(ids.map((id) => sql`(${id}, ${latest.get(id)}::bigint)`));
        // `greatest` ignores null, and keeps a later use another node already wrote.
        await sql`update tokens set last_used_at = greatest(tokens.last_used_at, v.at)
          from (values ${values}) as v(id, at) where tokens.id = v.id`.execute(trx);
      });
    });
  }

  async importUsers(users: readonly UserRecord[], tokens: readonly TokenRecord[]): Promise<void> {
    return this.#run(async () => {
      await this.#db.transaction().execute(async (trx) => {
        for (let i = 0; i < users.length; i += ROWS_PER_INSERT) {
          await trx
            .insertInto('users')
            .values(users.slice(i, i + ROWS_PER_INSERT).map(userToRow))
            .onConflict((oc) => oc.doNothing())
            .execute();
        }
        // No conflict target: a token whose id or hash is stored is skipped either way.
        for (let i = 0; i < tokens.length; i += ROWS_PER_INSERT) {
          await trx
            .insertInto('tokens')
            .values(tokens.slice(i, i + ROWS_PER_INSERT).map(tokenToRow))
            .onConflict((oc) => oc.doNothing())
            .execute();
        }
      });
    });
  }

  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    return this.#run(async () => {
      if (entries.length === 0) return;
      await this.#db.transaction().execute(async (trx) => {
        for (let i = 0; i < entries.length; i += ROWS_PER_INSERT) {
          await trx
            .insertInto('audit')
            .values(entries.slice(i, i + ROWS_PER_INSERT).map(auditToRow))
            .execute();
        }
      });
    });
  }

  listAudit(query: AuditQuery): Promise<AuditPage> {
    return this.#run(() => listAuditIn(this.#db, query));
  }
}

/** See the class comment: one whole-table check at a time, readers unhindered. */
async function lockUsers(trx: Trx): Promise<void> {
  await sql`lock table users in share row exclusive mode`.execute(trx);
}

function noSuchUser(name: string): JobworkerError {
  return new JobworkerError('NOT_FOUND', `No user named ${name}`);
}

function getUser(trx: Trx, name: string, lock?: 'update'): Promise<UserRow | undefined> {
  const select = trx.selectFrom('users').selectAll().where('name', '=', name);
  return (lock === 'update' ? select.forUpdate() : select).executeTakeFirst();
}

async function enabledAdmins(trx: Trx): Promise<number> {
  const { n } = await trx
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('role', '=', 'admin')
    .where('disabled', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(n);
}
