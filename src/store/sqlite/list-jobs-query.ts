import { type CompiledQuery, type Kysely, sql } from 'kysely';
import type { JobStatus } from '../../core/job.ts';
import { type CheckedListQuery, idPrefixEnd } from '../list-query.ts';
import type { JobRow, StoreSchema } from '../schema.ts';

/**
 * The SQL of one history page: `limit + 1` rows, newest first. Each form reads one index range in
 * id order and stops after the page (the tests check the plans):
 * - label: the label index drives (CROSS JOIN fixes the join order in SQLite), and the job is
 *   looked up by id; with an owner, the index that also holds the owner.
 * - several statuses: one branch per status, each an index range in id order, merged by SQLite
 *   (`MERGE (UNION ALL)`). `status IN (...)` would read each status's range and then sort.
 * - otherwise one branch: the index on the equality columns given, then id.
 */
export function listJobsQuery(db: Kysely<StoreSchema>, query: CheckedListQuery): CompiledQuery<JobRow> {
  const fetch = query.limit + 1;
  if (query.label !== null) return labelQuery(db, query, query.label).limit(fetch).compile();
  const [first, ...rest] = (query.statuses ?? [null]).map((status) => jobsQuery(db, query, status));
  let compound = first!;
  for (const branch of rest) compound = compound.unionAll(branch);
  return compound.orderBy('id', 'desc').limit(fetch).compile();
}

/**
 * Every running or paused job of a node, or every queued one it claimed, from the partial index
 * of such jobs (whose condition the query must repeat word for word).
 */
export function listActiveQuery(
  db: Kysely<StoreSchema>,
  node: string,
  which: 'running' | 'starting',
): CompiledQuery<JobRow> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('node', '=', node)
    .where(sql<boolean>`(status in ('running', 'paused') or hold = 'starting')`)
    .where(
      which === 'running' ? sql<boolean>`status in ('running', 'paused')` : sql<boolean>`hold = 'starting'`,
    )
    .orderBy('id')
    .compile();
}

function jobsQuery(db: Kysely<StoreSchema>, query: CheckedListQuery, status: JobStatus | null) {
  let q = db.selectFrom('jobs').selectAll();
  if (status !== null) q = q.where('status', '=', status);
  if (query.owner !== null) q = q.where('owner', '=', query.owner);
  if (query.name !== null) q = q.where('name', '=', query.name);
  if (query.queue !== null) q = q.where('queue', '=', query.queue);
  if (query.text !== null) q = q.where(textMatch('jobs', query.text));
  if (query.before !== null) q = q.where('id', '<', query.before);
  if (query.idPrefix !== null) {
    q = q.where('id', '>=', query.idPrefix).where('id', '<', idPrefixEnd(query.idPrefix));
  }
  return q;
}

function labelQuery(
  db: Kysely<StoreSchema>,
  query: CheckedListQuery,
  label: { readonly key: string; readonly value: string },
) {
  let q = db
    .selectFrom('job_labels as l')
    .crossJoin('jobs as j')
    .selectAll('j')
    .whereRef('j.id', '=', 'l.job_id')
    .where('l.key', '=', label.key)
    .where('l.value', '=', label.value);
  if (query.owner !== null) q = q.where('l.owner', '=', query.owner);
  if (query.statuses !== null) q = q.where('j.status', 'in', query.statuses);
  if (query.name !== null) q = q.where('j.name', '=', query.name);
  if (query.queue !== null) q = q.where('j.queue', '=', query.queue);
  if (query.text !== null) q = q.where(textMatch('j', query.text));
  if (query.before !== null) q = q.where('l.job_id', '<', query.before);
  if (query.idPrefix !== null) {
    q = q.where('l.job_id', '>=', query.idPrefix).where('l.job_id', '<', idPrefixEnd(query.idPrefix));
  }
  return q.orderBy('l.job_id', 'desc');
}

/**
 * The `text` filter: a case-insensitive substring of the name or of the command line, `command`
 * and `args` joined by single spaces (the command is only in the spec JSON). `instr` rather than
 * LIKE, so `%` and `_` in the text are plain characters; `lower` folds ASCII letters only. No
 * index serves a substring: the filter checks each row of the range the other filters read.
 */
function textMatch(table: 'jobs' | 'j', text: string) {
  const spec = sql.ref(`${table}.spec`);
  const name = sql.ref(`${table}.name`);
  const commandLine = sql`json_extract(${spec}, '$.command') || coalesce((select ' ' || group_concat(a.value, ' ') from json_each(${spec}, '$.args') as a), '')`;
  return sql<boolean>`(instr(lower(coalesce(${name}, '')), lower(${text})) > 0 or instr(lower(${commandLine}), lower(${text})) > 0)`;
}
