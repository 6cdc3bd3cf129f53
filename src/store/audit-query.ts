import type { Kysely } from 'kysely';
import type { StoreSchema } from './schema.ts';
import { checkAuditQuery, rowToAudit } from './user-row.ts';
import type { AuditPage, AuditQuery } from './user-store.ts';

/**
 * A page of the audit trail, newest first (`UserStore.listAudit`): the one query of both stores,
 * each index range of `audit` by id below the cursor.
 */
export async function listAuditIn(db: Kysely<StoreSchema>, query: AuditQuery): Promise<AuditPage> {
  const below = checkAuditQuery(query);
  const limit = query.limit;
  let select = db.selectFrom('audit').selectAll();
  if (query.user !== undefined) select = select.where('user', '=', query.user);
  if (query.action !== undefined) select = select.where('action', '=', query.action);
  if (query.since !== undefined) select = select.where('at', '>=', query.since.getTime());
  if (query.until !== undefined) select = select.where('at', '<', query.until.getTime());
  if (below !== undefined) select = select.where('id', '<', below);
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
