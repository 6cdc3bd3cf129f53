import { DatabaseSync } from 'node:sqlite';
import { startJob, waitNoneRunning } from './jobs.ts';
import { ServerHandle } from './server-handle.ts';

/** The three kinds of finished job the history is made of, by share of rows. */
const TEMPLATES = {
  succeeded: { command: '/bin/true' },
  failed: { command: '/bin/false' },
  stopped: { command: 'sleep', args: ['60'] },
} as const;

/**
 * Makes a history of `count` finished jobs: the real server records one job of each kind
 * (succeeded, failed, stopped), then SQL clones their rows, older than them, with fresh UUIDv7
 * ids one millisecond apart: 94% succeeded, 5% failed, 1% stopped. Every column the schema has
 * is copied from the template except the id and the times, so this keeps working when
 * migrations add columns. Returns the data directory, holding `jobworker.db`; the caller removes it.
 */
export async function fillHistory(
  count: number,
  logLevel: string,
): Promise<{ dataDir: string; seconds: number }> {
  const server = await ServerHandle.start({ logLevel, keepDataDir: true });
  const ids: Record<keyof typeof TEMPLATES, string> = { succeeded: '', failed: '', stopped: '' };
  try {
    for (const kind of Object.keys(TEMPLATES) as (keyof typeof TEMPLATES)[]) {
      ids[kind] = (await startJob(server.api, TEMPLATES[kind])).id;
    }
    await server.api.json('POST', `/v1/jobs/${ids.stopped}/stop`, { graceMs: 0 });
    await waitNoneRunning(server.api);
  } finally {
    await server.close();
  }

  const started = performance.now();
  const db = new DatabaseSync(`${server.dataDir}/jobworker.db`);
  try {
    db.exec('pragma journal_mode = wal; pragma synchronous = off');
    const columns = (db.prepare('pragma table_info(jobs)').all() as { name: string }[]).map((c) => c.name);
    db.exec('create temp table tpl as select * from jobs');
    db.prepare('alter table tpl add column kind text').run();
    const setKind = db.prepare('update tpl set kind = ? where id = ?');
    for (const [kind, id] of Object.entries(ids)) setKind.run(kind, id);
    const times = new Set(['created_at', 'started_at', 'finished_at', 'stop_at']);
    const select = columns.map((c) => {
      if (c === 'id') return ID_SQL;
      if (times.has(c)) return `case when t.${c} is null then null else ms + (t.${c} - t.created_at) end`;
      return `t.${c}`;
    });
    const base =
      (db.prepare('select min(created_at) as ms from jobs').get() as { ms: number }).ms - count - 60_000;
    const batch = 100_000;
    const insert = db.prepare(
      `insert into jobs (${columns.join(', ')})
       with recursive seq(i) as (select :from union all select i + 1 from seq where i + 1 < :to),
         rows as (select i, :base + i as ms,
           case when i % 20 = 7 then 'failed' when i % 100 = 3 then 'stopped' else 'succeeded' end as kind
           from seq)
       select ${select.join(', ')} from rows join tpl t on t.kind = rows.kind order by rows.i`,
    );
    for (let from = 0; from < count; from += batch) {
      db.exec('begin');
      insert.run({ from, to: Math.min(count, from + batch), base });
      db.exec('commit');
    }
    db.exec('pragma wal_checkpoint(truncate)');
  } finally {
    db.close();
  }
  return { dataDir: server.dataDir, seconds: (performance.now() - started) / 1000 };
}

/** A UUIDv7 from `ms` (48-bit time), a zero counter and random bits; unique because `ms` is. */
const ID_SQL = `substr(printf('%012x', ms), 1, 8) || '-' || substr(printf('%012x', ms), 9, 4) || '-7000-'
  || printf('%04x', 32768 + abs(random()) % 16384) || '-' || printf('%012x', abs(random()) % 281474976710656)`;
