import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type Kysely, sql } from 'kysely';
import type { Job, JobStatus } from '../../src/core/job.ts';
import { jobToRow, progressToText, rowToJob } from '../../src/store/job-row.ts';
import type { StoreSchema } from '../../src/store/schema.ts';
import type { DeliveryRecord, WebhookRecord, WebhookStore } from '../../src/store/webhook-store.ts';
import { makeJob } from './make-job.ts';

/**
 * A webhook store on a fresh database, with `db`: a connection of its own to the same database,
 * through which the suite changes `jobs` with plain SQL, as any path of any job store would, to
 * show that the database itself (its triggers) records the events and the counts.
 */
export interface OpenedWebhookStore {
  readonly store: WebhookStore;
  readonly db: Kysely<StoreSchema>;
  cleanup(): Promise<void>;
}

const T = (ms: number) => new Date(Date.UTC(2025, 0, 2, 3, 4, 5) + ms);
const NOTIFY = { url: 'https://example.com/h', events: ['job:finished' as const] };

export const webhook = (n: number): WebhookRecord => ({
  id: `01900000-0000-7000-8000-00000000000${n}`,
  url: `https://example.com/all/${n}`,
  events: ['job:finished', 'job:queued'],
  secret: 'x'.repeat(16),
  createdAt: T(n),
  createdBy: 'admin',
});

export const delivery = (id: string, overrides: Partial<DeliveryRecord> = {}): DeliveryRecord => ({
  id,
  event: 'job:finished',
  jobId: '01900000-0000-7000-8000-0000000000aa',
  owner: 'alice',
  webhookId: null,
  url: 'https://example.com/h',
  trusted: false,
  body: '{"event":"job:finished"}',
  createdAt: T(0),
  status: 'pending',
  attempts: 0,
  nextAt: T(0),
  lastAt: null,
  lastStatus: null,
  lastError: null,
  ...overrides,
});

export async function insertJob(db: Kysely<StoreSchema>, job: Job): Promise<void> {
  await db.insertInto('jobs').values(jobToRow(job)).execute();
}

/**
 * A job's row without the columns of migrations after the webhooks' (`stop_also_by`: SQLite 0013,
 * PostgreSQL 0007), for a `jobs` table as those earlier migrations left it.
 */
export function earlyJobRow(job: Job) {
  const { stop_also_by: _later, ...row } = jobToRow(job);
  return row;
}

/** A plain `update jobs`, as a job store's own transition would write it. */
export async function setStatus(
  db: Kysely<StoreSchema>,
  id: string,
  status: JobStatus,
  at = T(100),
): Promise<void> {
  const final = !['queued', 'running', 'paused'].includes(status);
  await db
    .updateTable('jobs')
    .set({
      status,
      ...(status === 'running' ? { started_at: at.getTime() } : {}),
      ...(final ? { finished_at: at.getTime(), exit_reason: status, exit_code: null } : {}),
    })
    .where('id', '=', id)
    .execute();
}

export async function jobAsStored(db: Kysely<StoreSchema>, id: string): Promise<Job> {
  return rowToJob(await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow());
}

/** The truth the kept counts must equal: a count over the table. */
export async function countedOverTable(db: Kysely<StoreSchema>): Promise<Record<string, number>> {
  const { rows } = await sql<{
    status: string;
    n: number;
  }>`select status, count(*) as n from jobs group by status`.execute(db);
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** The kept counts without the statuses at zero. */
export async function keptCounts(store: WebhookStore): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await store.countJobsByStatus()).filter(([, n]) => n !== 0));
}

/** The `WebhookStore` contract, run against every store (test/store/*-webhook-store.test.ts). */
export function describeWebhookStoreContract(name: string, open: () => Promise<OpenedWebhookStore>): void {
  describe(`${name} (webhook store contract)`, () => {
    let opened: OpenedWebhookStore;
    let store: WebhookStore;
    let db: Kysely<StoreSchema>;
    before(async () => {
      opened = await open();
      ({ store, db } = opened);
    });
    after(() => opened.cleanup());
    // Each test starts with no webhook, an empty outbox and no deliveries.
    beforeEach(async () => {
      for (const w of await store.listWebhooks()) await store.removeWebhook(w.id);
      for (const e of await store.readOutbox(1000)) await store.fanOut(e.seq, []);
      await db.deleteFrom('webhook_deliveries').execute();
    });

    it('adds, lists, gets and removes server-wide webhooks', async () => {
      await store.addWebhook(webhook(2));
      await store.addWebhook(webhook(1));
      assert.deepEqual(await store.listWebhooks(), [webhook(1), webhook(2)]);
      assert.deepEqual(await store.getWebhook(webhook(2).id), webhook(2));
      assert.equal(await store.getWebhook('01900000-0000-7000-8000-000000000009'), undefined);
      assert.equal(await store.removeWebhook(webhook(1).id), true);
      assert.equal(await store.removeWebhook(webhook(1).id), false);
      assert.deepEqual(await store.listWebhooks(), [webhook(2)]);
    });

    it('records nothing for a plain insert and update of a job without notify while no webhook exists', async () => {
      const job = makeJob();
      await insertJob(db, job);
      await setStatus(db, job.id, 'running');
      await setStatus(db, job.id, 'succeeded');
      assert.deepEqual(await store.readOutbox(10), []);
    });

    it("records a notify job's queued, started and finished from plain SQL, with the job as it was, once each", async () => {
      const job = makeJob({ spec: { notify: NOTIFY } });
      await insertJob(db, job);
      const queued = await jobAsStored(db, job.id);
      await setStatus(db, job.id, 'running', T(10));
      const running = await jobAsStored(db, job.id);
      // Its progress after the start is no part of the start's snapshot (SQLite's triggers of
      // migration 0008 left it out, and the job's later progress filled it in).
      await db
        .updateTable('jobs')
        .set({ progress: progressToText({ done: 5, total: 10, message: 'half', at: T(15) }) })
        .where('id', '=', job.id)
        .execute();
      await setStatus(db, job.id, 'paused');
      await setStatus(db, job.id, 'running'); // paused → running is not a start
      await db.updateTable('jobs').set({ stdout_bytes: 42 }).where('id', '=', job.id).execute();
      await setStatus(db, job.id, 'failed', T(20));
      const failed = await jobAsStored(db, job.id);
      await setStatus(db, job.id, 'succeeded'); // final → final is no second finish
      const events = await store.readOutbox(10);
      assert.deepEqual(
        events.map((e) => [e.event, e.at]),
        [
          ['job:queued', job.createdAt],
          ['job:started', T(10)],
          ['job:finished', T(20)],
        ],
      );
      assert.deepEqual(events[0]?.job, queued, 'the snapshot is the job as it was then');
      assert.deepEqual(events[1]?.job, running);
      assert.equal(events[1]?.job.progress, null, 'the start shows no progress made after it');
      assert.deepEqual(events[2]?.job, failed);
      assert.deepEqual(
        (await store.readOutbox(2)).map((e) => e.event),
        ['job:queued', 'job:started'],
        'oldest first, at most `limit`',
      );
    });

    it('records every job while a server-wide webhook exists; a job inserted finished is queued and finished', async () => {
      await store.addWebhook(webhook(1));
      const plain = makeJob();
      const cancelled = makeJob({ status: 'cancelled' });
      await insertJob(db, plain);
      await insertJob(db, cancelled);
      await store.removeWebhook(webhook(1).id);
      await insertJob(db, makeJob());
      await setStatus(db, plain.id, 'running');
      const events = await store.readOutbox(10);
      assert.deepEqual(
        events.map((e) => [e.event, e.job.id, e.job.status, e.at]),
        [
          ['job:queued', plain.id, 'queued', plain.createdAt],
          ['job:queued', cancelled.id, 'cancelled', cancelled.createdAt],
          ['job:finished', cancelled.id, 'cancelled', cancelled.finishedAt],
        ],
        'nothing once the last webhook is gone',
      );
    });

    it('appends events that are no state change, with the job given', async () => {
      const job = makeJob({ progress: { done: 5, total: 10, message: 'half', at: T(5) } });
      await insertJob(db, job);
      await store.appendOutbox('job:progress', job, T(5));
      const [event] = await store.readOutbox(10);
      assert.equal(event?.event, 'job:progress');
      assert.deepEqual(event?.at, T(5));
      assert.deepEqual(event?.job, job);
    });

    it('fans an outbox event out into deliveries once, in one step', async () => {
      await store.appendOutbox('job:progress', makeJob(), T(1));
      await store.appendOutbox('job:progress', makeJob(), T(2));
      const [first, second] = await store.readOutbox(10);
      const d1 = delivery('01900000-0000-7000-8000-0000000000d1');
      const d2 = delivery('01900000-0000-7000-8000-0000000000d2', {
        webhookId: webhook(1).id,
        trusted: true,
      });
      await store.fanOut(first!.seq, [d1, d2]);
      await store.fanOut(first!.seq, [delivery('01900000-0000-7000-8000-0000000000d3')]);
      assert.deepEqual(
        (await store.readOutbox(10)).map((e) => e.seq),
        [second!.seq],
        'the fanned out event is gone',
      );
      const { deliveries } = await store.listDeliveries({ limit: 10 });
      assert.deepEqual(deliveries, [d2, d1], 'a repeated fan-out of the same event adds nothing');
    });

    it('claims due deliveries earliest first for a lease, and records attempts', async () => {
      const early = delivery('01900000-0000-7000-8000-0000000000e1', { nextAt: T(10) });
      const late = delivery('01900000-0000-7000-8000-0000000000e2', { nextAt: T(20) });
      const done = delivery('01900000-0000-7000-8000-0000000000e3', {
        status: 'delivered',
        nextAt: null,
        attempts: 1,
        lastAt: T(1),
        lastStatus: 200,
      });
      await store.appendOutbox('job:progress', makeJob(), T(1));
      const [event] = await store.readOutbox(1);
      await store.fanOut(event!.seq, [late, early, done]);
      const lease = (ms: number) => ({ by: 'node-a', until: T(ms) });
      assert.deepEqual(await store.claimDueDeliveries(T(9), 10, lease(1000)), []);
      assert.deepEqual(await store.nextDueAt([]), T(10));
      assert.deepEqual(await store.claimDueDeliveries(T(10), 1, lease(1000)), [
        { ...early, nextAt: T(1000) },
      ]);
      // Claimed: due for nobody until its lease ends, when another claimer takes it over.
      assert.deepEqual(await store.claimDueDeliveries(T(20), 10, { by: 'node-b', until: T(2000) }), [
        { ...late, nextAt: T(2000) },
      ]);
      assert.deepEqual(await store.claimDueDeliveries(T(999), 10, lease(3000)), []);
      assert.deepEqual(await store.nextDueAt([]), T(1000));
      assert.deepEqual(await store.nextDueAt([early.id]), T(2000));
      assert.equal(await store.nextDueAt([early.id, late.id]), null);
      const retried = await store.recordAttempt(early.id, {
        by: 'node-a',
        at: T(11),
        status: 'pending',
        httpStatus: 503,
        error: 'answered 503',
        nextAt: T(30),
      });
      assert.deepEqual(retried, {
        ...early,
        attempts: 1,
        nextAt: T(30),
        lastAt: T(11),
        lastStatus: 503,
        lastError: 'answered 503',
      });
      const failed = await store.recordAttempt(late.id, {
        by: 'node-b',
        at: T(21),
        status: 'failed',
        httpStatus: null,
        error: 'connection refused',
        nextAt: null,
      });
      assert.equal(failed.status, 'failed');
      assert.deepEqual(await store.claimDueDeliveries(T(100), 10, lease(5000)), [
        { ...retried, nextAt: T(5000) },
      ]);
      // An attempt that raced another (a second pass, a second node) leaves a decided one as is.
      const late2 = await store.recordAttempt(late.id, {
        by: 'node-b',
        at: T(22),
        status: 'pending',
        httpStatus: 500,
        error: 'answered 500',
        nextAt: T(40),
      });
      assert.deepEqual(late2, failed);
    });

    it("gives back a claimer's own claims, due at once, and no one else's", async () => {
      const ids = [1, 2, 3].map((n) => `01900000-0000-7000-8000-0000000000c${n}`);
      await store.appendOutbox('job:progress', makeJob(), T(1));
      const [event] = await store.readOutbox(1);
      await store.fanOut(
        event!.seq,
        ids.map((id) => delivery(id, { nextAt: T(10) })),
      );
      const [a1] = await store.claimDueDeliveries(T(10), 1, { by: 'node-a', until: T(1000) });
      const [b1] = await store.claimDueDeliveries(T(10), 1, { by: 'node-b', until: T(1000) });
      const [a2] = await store.claimDueDeliveries(T(10), 1, { by: 'node-a', until: T(1000) });
      // a2's attempt was recorded: not a claim any more, whatever its next time.
      await store.recordAttempt(a2!.id, {
        by: 'node-a',
        at: T(11),
        status: 'pending',
        httpStatus: 500,
        error: 'e',
        nextAt: T(900),
      });
      assert.equal(await store.releaseClaims('node-a', T(50)), 1);
      // A claimer that still has a1's attempt in flight does not claim it again.
      assert.deepEqual(
        await store.claimDueDeliveries(T(50), 10, { by: 'node-a', until: T(2000), excluding: [a1!.id] }),
        [],
      );
      assert.deepEqual(
        (await store.claimDueDeliveries(T(50), 10, { by: 'node-c', until: T(2000) })).map((d) => [
          d.id,
          d.nextAt,
        ]),
        [[a1!.id, T(2000)]],
      );
      assert.equal(await store.releaseClaims('node-a', T(60)), 0, 'node-c holds it now');
      assert.deepEqual(await store.nextDueAt([]), T(900));
      assert.ok(b1);
    });

    it("claims within each receiver's room (origin), passing over a full one, and leaves the rest their turn", async () => {
      const id = (n: number) => `01900000-0000-7000-8000-0000000000e${n}`;
      await store.appendOutbox('job:progress', makeJob(), T(1));
      const [event] = await store.readOutbox(1);
      await store.fanOut(event!.seq, [
        delivery(id(1), { url: 'https://slow.example/a', nextAt: T(10) }),
        delivery(id(2), { url: 'https://slow.example:8443/b', nextAt: T(11) }),
        // Another host whose name begins with the first's: not the same origin.
        delivery(id(3), { url: 'https://slow.example.org/c', nextAt: T(12) }),
        delivery(id(4), { url: 'https://slow.example/d', nextAt: T(13) }),
        delivery(id(5), { url: 'https://slow.example/e', nextAt: T(14) }),
        delivery(id(6), { url: 'https://slow.example:8443/f', nextAt: T(15) }),
      ]);
      assert.deepEqual(await store.nextDueAt([], ['https://slow.example']), T(11));
      assert.deepEqual(
        await store.nextDueAt([id(2), id(6)], ['https://slow.example', 'https://slow.example.org']),
        null,
      );
      // slow.example has 1 of 2 in flight: room for one more; :8443 none in flight: room for two.
      const inFlight = new Map([
        ['https://slow.example', 1],
        ['https://elsewhere.example', 2],
      ]);
      const claimed = await store.claimDueDeliveries(T(20), 10, {
        by: 'node-a',
        until: T(1000),
        perOrigin: { max: 2, inFlight },
      });
      assert.deepEqual(
        claimed.map((d) => d.id),
        [id(1), id(2), id(3), id(6)],
      );
      // Those passed over were not claimed: still due at their own times, in their turn.
      assert.deepEqual(await store.nextDueAt(claimed.map((d) => d.id)), T(13));
      // A full receiver is passed over whole; the limit counts what is taken, not what is looked at.
      const full = new Map([['https://slow.example', 2]]);
      assert.deepEqual(
        await store.claimDueDeliveries(T(20), 1, {
          by: 'node-b',
          until: T(2000),
          perOrigin: { max: 2, inFlight: full },
        }),
        [],
      );
      assert.deepEqual(
        (await store.claimDueDeliveries(T(20), 1, { by: 'node-b', until: T(2000) })).map((d) => [
          d.id,
          d.nextAt,
        ]),
        [[id(4), T(2000)]],
      );
    });

    it('counts a late attempt whose claim another took over, and leaves that claim alone unless it decided', async () => {
      const ids = [1, 2].map((n) => `01900000-0000-7000-8000-0000000000d${n}`);
      await store.appendOutbox('job:progress', makeJob(), T(1));
      const [event] = await store.readOutbox(1);
      await store.fanOut(
        event!.seq,
        ids.map((id) => delivery(id, { nextAt: T(10) })),
      );
      // node-a claims both; its lease ends before it records; node-b takes both over.
      await store.claimDueDeliveries(T(10), 2, { by: 'node-a', until: T(100) });
      const taken = await store.claimDueDeliveries(T(100), 2, { by: 'node-b', until: T(200) });
      assert.equal(taken.length, 2);
      const retry = await store.recordAttempt(ids[0]!, {
        by: 'node-a',
        at: T(150),
        status: 'pending',
        httpStatus: 503,
        error: 'answered HTTP 503',
        nextAt: T(160),
      });
      assert.deepEqual(
        [retry.status, retry.attempts, retry.nextAt, retry.lastStatus],
        ['pending', 1, T(200), 503],
        "counted, node-b's lease kept",
      );
      assert.deepEqual(await store.claimDueDeliveries(T(160), 10, { by: 'node-c', until: T(300) }), []);
      const delivered = await store.recordAttempt(ids[1]!, {
        by: 'node-a',
        at: T(150),
        status: 'delivered',
        httpStatus: 200,
        error: null,
        nextAt: null,
      });
      assert.deepEqual([delivered.status, delivered.attempts, delivered.nextAt], ['delivered', 1, null]);
      // node-b's own record of the same delivery then finds it decided.
      const after = await store.recordAttempt(ids[1]!, {
        by: 'node-b',
        at: T(160),
        status: 'pending',
        httpStatus: 500,
        error: 'answered HTTP 500',
        nextAt: T(400),
      });
      assert.deepEqual(after, delivered);
      const own = await store.recordAttempt(ids[0]!, {
        by: 'node-b',
        at: T(170),
        status: 'pending',
        httpStatus: 500,
        error: 'answered HTTP 500',
        nextAt: T(400),
      });
      assert.deepEqual([own.attempts, own.nextAt], [2, T(400)]);
      assert.equal(await store.releaseClaims('node-b', T(180)), 0, 'its record ended the claim');
      // node-a, later still, with a retry and then a give-up: counted, node-b's retry time kept,
      // and not given up (node-b's attempt may get through).
      const later = await store.recordAttempt(ids[0]!, {
        by: 'node-a',
        at: T(190),
        status: 'pending',
        httpStatus: 502,
        error: 'answered HTTP 502',
        nextAt: T(195),
      });
      assert.deepEqual(
        [later.status, later.attempts, later.nextAt, later.lastStatus],
        ['pending', 3, T(400), 502],
      );
      const gaveUp = await store.recordAttempt(ids[0]!, {
        by: 'node-a',
        at: T(191),
        status: 'failed',
        httpStatus: null,
        error: 'connection refused',
        nextAt: null,
      });
      assert.deepEqual([gaveUp.status, gaveUp.attempts, gaveUp.nextAt], ['pending', 4, T(400)]);
    });

    it('never hands one delivery to two claims made at the same time', async () => {
      const ids = Array.from(
        { length: 40 },
        (_, n) => `01900000-0000-7000-8000-0000000001${String(n).padStart(2, '0')}`,
      );
      await store.appendOutbox('job:progress', makeJob(), T(1));
      const [event] = await store.readOutbox(1);
      await store.fanOut(
        event!.seq,
        ids.map((id) => delivery(id, { nextAt: T(10) })),
      );
      const claims = await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          store.claimDueDeliveries(T(10), 7, { by: `node-${n}`, until: T(1000) }),
        ),
      );
      const taken = claims.flat().map((d) => d.id);
      assert.equal(new Set(taken).size, taken.length, 'no delivery claimed twice');
      assert.equal(taken.length, 40, 'every due delivery claimed by one of them');
    });

    it('lists deliveries newest first by page, filtered by owner, job, webhook and status', async () => {
      const ids = [1, 2, 3, 4, 5].map((n) => `01900000-0000-7000-8000-0000000000f${n}`);
      const all = ids.map((id, i) =>
        delivery(id, {
          owner: i % 2 === 0 ? 'alice' : 'bob',
          jobId: i < 2 ? '01900000-0000-7000-8000-0000000000a1' : '01900000-0000-7000-8000-0000000000a2',
          webhookId: i === 4 ? webhook(1).id : null,
          status: i === 3 ? 'failed' : 'pending',
        }),
      );
      await store.appendOutbox('job:progress', makeJob(), T(1));
      const [event] = await store.readOutbox(1);
      await store.fanOut(event!.seq, all);
      const first = await store.listDeliveries({ limit: 2 });
      assert.deepEqual(
        first.deliveries.map((d) => d.id),
        [ids[4], ids[3]],
      );
      const second = await store.listDeliveries({ limit: 2, cursor: first.nextCursor ?? '' });
      assert.deepEqual(
        second.deliveries.map((d) => d.id),
        [ids[2], ids[1]],
      );
      const last = await store.listDeliveries({ limit: 2, cursor: second.nextCursor ?? '' });
      assert.deepEqual(
        last.deliveries.map((d) => d.id),
        [ids[0]],
      );
      assert.equal(last.nextCursor, null);
      const only = async (q: Parameters<WebhookStore['listDeliveries']>[0]) =>
        (await store.listDeliveries(q)).deliveries.map((d) => d.id);
      assert.deepEqual(await only({ limit: 10, owner: 'bob' }), [ids[3], ids[1]]);
      assert.deepEqual(await only({ limit: 10, jobId: '01900000-0000-7000-8000-0000000000a1' }), [
        ids[1],
        ids[0],
      ]);
      assert.deepEqual(await only({ limit: 10, webhookId: webhook(1).id }), [ids[4]]);
      assert.deepEqual(await only({ limit: 10, status: 'failed' }), [ids[3]]);
      await assert.rejects(store.listDeliveries({ limit: 1001 }), {
        code: 'VALIDATION_FAILED',
        field: 'limit',
      });
    });

    it('keeps jobs per status through plain inserts, status changes and deletes, batched or not', async () => {
      const check = async (what: string) =>
        assert.deepEqual(await keptCounts(store), await countedOverTable(db), what);
      await db.deleteFrom('jobs').execute();
      await check('empty');
      const jobs = (['queued', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const).map(
        (status) => makeJob({ status }),
      );
      await db.insertInto('jobs').values(jobs.map(jobToRow)).execute();
      await insertJob(db, makeJob({ status: 'paused' }));
      await check('inserted, one statement for many');
      await setStatus(db, jobs[0]!.id, 'running');
      await db
        .updateTable('jobs')
        .set({ status: 'lost' })
        .where('status', 'in', ['running', 'paused'])
        .execute();
      await db.updateTable('jobs').set({ stdout_bytes: 7 }).execute();
      await check('changed, one by one and many at once');
      await db.deleteFrom('jobs').where('id', '=', jobs[3]!.id).execute();
      await db.deleteFrom('jobs').where('status', '=', 'lost').execute();
      await check('deleted');
      assert.deepEqual(await keptCounts(store), { queued: 1, failed: 1, cancelled: 1 });
      const counts = await store.countJobsByStatus();
      assert.equal(counts.running, 0, 'a status with no job counts 0');
    });
  });
}
