import { type CompiledQuery, type Kysely, sql } from 'kysely';
import type { JobStatus } from '../../core/job.ts';
import { type CheckedListQuery, idPrefixEnd } from '../list-query.ts';
import type { JobRow, StoreSchema } from '../schema.ts';

/**
 * The SQL of one history page on PostgreSQL: `limit + 1` rows, newest first, each form one index
 * range read backwards in id order and stopped after the page (test/store/pg-job-store.test.ts
 * checks the plans have neither a sort nor a sequential scan):
 * - label: the label index drives, each job is then read by its primary key;
 * - several statuses: one branch per status, merged in id order (`Merge Append`);
 * - otherwise the index on the equality columns given, then id (the primary key with none).
 */
export function pgListJobsQuery(db: Kysely<StoreSchema>, query: CheckedListQuery): CompiledQuery<JobRow> {
  const fetch = query.limit + 1;
  if (query.label !== null) return labelQuery(db, query, query.label).limit(fetch).compile();
  const [first, ...rest] = (query.statuses ?? [null]).map((status) => jobsQuery(db, query, status));
  let compound = first!;
  for (const branch of rest) compound = compound.unionAll(branch);
  return compound.orderBy('id', 'desc').limit(fetch).compile();
}

/**
 * Every running or paused job of a node, or every queued one it claimed, from the partial index
 * of such jobs (whose condition the query repeats so that the planner can use it).
 */
export function pgListActiveQuery(
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
    .innerJoin('jobs as j', 'j.id', 'l.job_id')
    .selectAll('j')
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

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';

/** `text` with ASCII letters folded to lower case and nothing else changed: SQLite's `lower`. */
function asciiLower(text: unknown) {
  return sql`translate(${text}, ${sql.lit(UPPER)}, ${sql.lit(LOWER)})`;
}

/**
 * The `text` filter, with the SQLite store's meaning: a substring of the name or of the command
 * line (`command` and `args` joined by single spaces, read from the spec JSON), ignoring ASCII
 * case only. `strpos` rather than ILIKE, so `%` and `_` are plain characters. No index holds a
 * substring: the filter parses the spec of each row of the range the other filters read, so a
 * rare text costs a walk of that whole range (at 1M jobs, a second or more without other filters).
 */
function textMatch(table: 'jobs' | 'j', text: string) {
  const spec = sql.ref(`${table}.spec`);
  const name = sql.ref(`${table}.name`);
  const commandLine = sql`((${spec})::json ->> 'command') || coalesce((select ' ' || string_agg(a.value, ' ' order by a.n)
    from json_array_elements_text((${spec})::json -> 'args') with ordinality as a(value, n)), '')`;
  const needle = asciiLower(sql`${text}::text`);
  return sql<boolean>`(strpos(${asciiLower(sql`coalesce(${name}, '')`)}, ${needle}) > 0
    or strpos(${asciiLower(commandLine)}, ${needle}) > 0)`;
}
