import { type Kysely, type SelectQueryBuilder, sql } from 'kysely';
import { ValidationError } from '../core/errors.ts';
import type { StoreSchema } from './schema.ts';
import { rowToDelivery } from './webhook-row.ts';
import type {
  AttemptResult,
  DeliveryClaim,
  DeliveryPage,
  DeliveryQuery,
  DeliveryRecord,
} from './webhook-store.ts';

/**
 * The longer queries of `WebhookStore`, for `KyselyWebhookStore` (both databases): the claims,
 * the record of an attempt and the deliveries' list.
 */

/** `WebhookStore.recordAttempt`. */
export async function recordAttemptIn(
  db: Kysely<StoreSchema>,
  id: string,
  result: AttemptResult,
): Promise<DeliveryRecord> {
  const answer = {
    last_at: result.at.getTime(),
    last_status: result.httpStatus,
    last_error: result.error,
  };
  const mine = await db
    .updateTable('webhook_deliveries')
    .set((eb) => ({
      ...answer,
      status: result.status,
      attempts: eb('attempts', '+', 1),
      next_at: result.nextAt === null ? null : result.nextAt.getTime(),
      claimed_by: null,
    }))
    .where('id', '=', id)
    // A delivery already decided stays so: an attempt that raced another (a second pass, a
    // second node) must not put a delivered one back to pending, nor count twice.
    .where('status', '=', 'pending')
    // Its own claim only: unclaimed, another took it over and recorded (or gave it back) since.
    .where('claimed_by', '=', result.by)
    .returningAll()
    .executeTakeFirst();
  if (mine) return rowToDelivery(mine);
  // Another claimer took it over when this attempt's lease ended: its claim, or the retry time
  // it recorded, stays, unless this attempt delivered it. A late `failed` (given up at the
  // deadline) is only counted: the other's attempt, made as late, may have got through, and
  // records `failed` itself if not.
  const decided = result.status === 'delivered';
  const late = await db
    .updateTable('webhook_deliveries')
    .set((eb) => ({
      ...answer,
      attempts: eb('attempts', '+', 1),
      ...(decided ? { status: result.status, next_at: null, claimed_by: null } : {}),
    }))
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .returningAll()
    .executeTakeFirst();
  if (late) return rowToDelivery(late);
  return rowToDelivery(
    await db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirstOrThrow(),
  );
}

/**
 * `WebhookStore.claimDueDeliveries`. `skipLocked`: PostgreSQL, where claims of other nodes run
 * at the same time; the rows a concurrent claim has locked are passed over rather than waited
 * for. The update asks again that each row be due, so that a row claimed meanwhile (after this
 * select read it) is left to its claimer whatever the isolation level.
 */
export async function claimDueDeliveriesIn(
  db: Kysely<StoreSchema>,
  now: Date,
  limit: number,
  claim: DeliveryClaim,
  skipLocked: boolean,
): Promise<DeliveryRecord[]> {
  if (!Number.isInteger(limit) || limit < 1) return [];
  const excluding = claim.excluding ?? [];
  const perOrigin = claim.perOrigin;
  const full = perOrigin === undefined ? [] : fullOrigins(perOrigin.inFlight, perOrigin.max);
  return db.transaction().execute(async (trx) => {
    let due = notTo(
      trx
        .selectFrom('webhook_deliveries')
        .select(['id', 'url'])
        .where('status', '=', 'pending')
        .where('next_at', '<=', now.getTime())
        .$if(excluding.length > 0, (q) => q.where('id', 'not in', [...excluding])),
      full,
    )
      .orderBy('next_at')
      .orderBy('id')
      // Room for what a receiver with some room left cannot take: what is behind it comes next.
      .limit(perOrigin === undefined ? limit : limit * CLAIM_WINDOW);
    if (skipLocked) due = due.forUpdate().skipLocked();
    const candidates = await due.execute();
    const ids =
      perOrigin === undefined ? candidates.map((r) => r.id) : withRoom(candidates, limit, perOrigin);
    if (ids.length === 0) return [];
    const rows = await trx
      .updateTable('webhook_deliveries')
      .set({ next_at: claim.until.getTime(), claimed_by: claim.by })
      .where('id', 'in', ids)
      .where('status', '=', 'pending')
      .where('next_at', '<=', now.getTime())
      .returningAll()
      .execute();
    const order = new Map(ids.map((id, i) => [id, i]));
    return rows.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0)).map(rowToDelivery);
  });
}

/** `WebhookStore.releaseClaims`. */
export async function releaseClaimsIn(db: Kysely<StoreSchema>, by: string, now: Date): Promise<number> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set({ next_at: now.getTime(), claimed_by: null })
    .where('claimed_by', '=', by)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** How many due deliveries a claim with `perOrigin` looks at, per one it may take. */
const CLAIM_WINDOW = 4;

/**
 * Of `rows` (due, in turn), the ids of up to `limit` whose receivers have room, in turn: each
 * receiver takes at most what `perOrigin` leaves it.
 */
function withRoom(
  rows: readonly { id: string; url: string }[],
  limit: number,
  perOrigin: NonNullable<DeliveryClaim['perOrigin']>,
): string[] {
  const taken = new Map<string, number>();
  const ids: string[] = [];
  for (const row of rows) {
    if (ids.length >= limit) break;
    const origin = originOf(row.url);
    const busy = (perOrigin.inFlight.get(origin) ?? 0) + (taken.get(origin) ?? 0);
    if (busy >= perOrigin.max) continue;
    taken.set(origin, (taken.get(origin) ?? 0) + 1);
    ids.push(row.id);
  }
  return ids;
}

/** The origins with `max` attempts or more in flight (`inFlight`: attempts by origin). */
export function fullOrigins(inFlight: ReadonlyMap<string, number>, max: number): string[] {
  const full: string[] = [];
  for (const [origin, n] of inFlight) if (n >= max) full.push(origin);
  return full;
}

/** A delivery's receiver: its URL's origin (`URL.origin`); the URL itself when it is none. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** `WebhookStore.nextDueAt`. */
export async function nextDueAtIn(
  db: Kysely<StoreSchema>,
  excluding: readonly string[],
  excludingOrigins: readonly string[],
): Promise<Date | null> {
  const row = await notTo(
    db
      .selectFrom('webhook_deliveries')
      .select('next_at')
      .where('status', '=', 'pending')
      .$if(excluding.length > 0, (q) => q.where('id', 'not in', [...excluding])),
    excludingOrigins,
  )
    .orderBy('next_at')
    .limit(1)
    .executeTakeFirst();
  return row?.next_at == null ? null : new Date(Number(row.next_at));
}

/**
 * Leaves out the deliveries to `origins`. A delivery's URL is stored as `URL.href` writes it
 * (`webhookUrl` normalizes every URL it accepts), which begins with its origin and a slash.
 */
function notTo<O>(
  q: SelectQueryBuilder<StoreSchema, 'webhook_deliveries', O>,
  origins: readonly string[],
): SelectQueryBuilder<StoreSchema, 'webhook_deliveries', O> {
  let out = q;
  for (const origin of origins) {
    const prefix = `${origin}/`;
    out = out.where(sql<string>`substr(url, 1, ${sql.lit(prefix.length)})`, '<>', prefix);
  }
  return out;
}

/** `WebhookStore.listDeliveries`. */
export async function listDeliveriesIn(db: Kysely<StoreSchema>, query: DeliveryQuery): Promise<DeliveryPage> {
  if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > 1000) {
    throw ValidationError.expected('limit', 'an integer from 1 to 1000', query.limit);
  }
  let q = db.selectFrom('webhook_deliveries').selectAll();
  if (query.owner !== undefined) q = q.where('owner', '=', query.owner);
  if (query.jobId !== undefined) q = q.where('job_id', '=', query.jobId);
  if (query.webhookId !== undefined) q = q.where('webhook_id', '=', query.webhookId);
  if (query.notifyOnly) q = q.where('webhook_id', 'is', null);
  if (query.status !== undefined) q = q.where('status', '=', query.status);
  if (query.cursor !== undefined) q = q.where('id', '<', query.cursor);
  const rows = await q
    .orderBy('id', 'desc')
    .limit(query.limit + 1)
    .execute();
  const page = rows.slice(0, query.limit).map(rowToDelivery);
  return {
    deliveries: page,
    nextCursor: rows.length > query.limit ? (page[page.length - 1]?.id ?? null) : null,
  };
}
