import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClaimLostError,
  IllegalTransitionError,
  InUseError,
  NotFinishedError,
  NotFoundError,
  ValidationError,
} from '../../src/core/errors.ts';
import { newJobId } from '../../src/core/ids.ts';
import {
  isFinal,
  JOB_STATUSES,
  type Job,
  type JobStatus,
  type ProcessIdentity,
  TIMEOUT_STOPPER,
} from '../../src/core/job.ts';
import { canTransition } from '../../src/core/states.ts';
import type { JobFinish, JobListQuery, JobStore } from '../../src/store/job-store.ts';
import type { WebhookStore } from '../../src/store/webhook-store.ts';
import { makeJob, makeRichJob } from './make-job.ts';
import { delivery } from './webhook-store-contract.ts';

/** A store on a fresh, empty database, and how to close it and throw the database away. */
export interface OpenedJobStore {
  readonly store: JobStore;
  cleanup(): Promise<void>;
}

/** What a store's contract depends on. */
export interface StoreTraits {
  /** Nodes of a cluster share it (PostgreSQL), or one server uses it alone (SQLite). */
  readonly shared: boolean;
}

const FINAL_STATUSES = JOB_STATUSES.filter(isFinal);
const PROCESS: ProcessIdentity = {
  pid: 777,
  startTicks: 123456,
  bootId: 'boot-2',
  cgroups: ['/jobworker/x'],
};
const AT = new Date(Date.UTC(2025, 2, 4, 5, 6, 7, 89));

function finish(status: JobStatus, reason = `became ${status}`): JobFinish {
  return {
    status,
    exit: { exitCode: status === 'succeeded' ? 0 : status === 'failed' ? 3 : null, signal: null, reason },
    finishedAt: AT,
    outputBytes: { stdout: 10, stderr: 2 },
  };
}

/** An `assert.rejects` check: an IllegalTransitionError naming the job, its current status and the target. */
function illegal(jobId: string, from: JobStatus, to: JobStatus) {
  return (error: unknown): true => {
    assert.ok(
      error instanceof IllegalTransitionError,
      `expected IllegalTransitionError, got ${String(error)}`,
    );
    assert.equal(error.code, 'ILLEGAL_TRANSITION');
    assert.equal(error.jobId, jobId);
    assert.equal(error.from, from);
    assert.equal(error.to, to);
    return true;
  };
}

function invalid(field: string) {
  return (error: unknown): true => {
    assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
    assert.equal(error.field, field);
    return true;
  };
}

function notFound(id: string) {
  return (error: unknown): true => {
    assert.ok(error instanceof NotFoundError, `expected NotFoundError, got ${String(error)}`);
    assert.equal(error.id, id);
    return true;
  };
}

/** Every job of a listing, following `nextCursor` to the end; checks the shape of each page. */
async function listAll(store: JobStore, query: Omit<JobListQuery, 'limit' | 'cursor'>, limit: number) {
  const jobs: Job[] = [];
  let cursor: string | undefined;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 10_000, 'paging does not end');
    const page = await store.listJobs({ ...query, limit, ...(cursor === undefined ? {} : { cursor }) });
    assert.ok(page.jobs.length <= limit, `a page of ${page.jobs.length} jobs for limit ${limit}`);
    jobs.push(...page.jobs);
    if (page.nextCursor === null) return jobs;
    assert.equal(page.jobs.length, limit, 'only the last page may be short');
    cursor = page.nextCursor;
  }
}

function newestFirst(jobs: readonly Job[]): string[] {
  return jobs.map((j) => j.id).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
}

/** The `text` filter's rule: in the name or the command line, ignoring (ASCII) case. */
function matchesText(job: Job, text: string): boolean {
  const needle = text.toLowerCase();
  const commandLine = [job.spec.command, ...job.spec.args].join(' ');
  return (job.spec.name ?? '').toLowerCase().includes(needle) || commandLine.toLowerCase().includes(needle);
}

/** A fixed permutation, so that insertion order differs from id order. */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let seed = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The conformance suite every `JobStore` must pass. `open` gives each test its own fresh database.
 * Besides the interface's own words, it pins down:
 * - `insertJob` with an existing id, or an id that is not a UUIDv7: `ValidationError` on `id`.
 * - `markStopRequested` on a finished job: `IllegalTransitionError` (to `stopped`), nothing recorded.
 * - `markStopForced` only while running (else `IllegalTransitionError` to `stopped`); idempotent.
 * - `markFinished` to a status that is not final: `ValidationError` on `status`.
 * - `listJobs`: `limit` outside 1..1000, a malformed cursor, an empty or unknown status list are
 *   `ValidationError`s on `limit`, `cursor` and `status`.
 */
export function describeJobStoreContract(
  name: string,
  open: () => Promise<OpenedJobStore>,
  traits: StoreTraits = { shared: false },
): void {
  async function withStore(test: (store: JobStore) => Promise<void>): Promise<void> {
    const { store, cleanup } = await open();
    try {
      await test(store);
    } finally {
      await cleanup();
    }
  }

  async function inserted(store: JobStore, ...overrides: Parameters<typeof makeJob>): Promise<Job> {
    const job = makeJob(...overrides);
    await store.insertJob(job);
    return job;
  }

  describe(`JobStore contract: ${name}`, () => {
    describe('insertJob and getJob', () => {
      it('round-trips a richly populated job exactly', () =>
        withStore(async (store) => {
          const job = makeRichJob();
          await store.insertJob(job);
          assert.deepStrictEqual(await store.getJob(job.id), job);
        }));

      it('round-trips a job in every status, nulls and empty maps included', () =>
        withStore(async (store) => {
          for (const status of JOB_STATUSES) {
            const job = makeJob({ status });
            await store.insertJob(job);
            assert.deepStrictEqual(await store.getJob(job.id), job, status);
          }
        }));

      it('keeps dates to the millisecond, including the epoch and far dates', () =>
        withStore(async (store) => {
          for (const ms of [0, 1, 999, 1_700_000_000_001, 253_402_300_799_999]) {
            const job = makeJob({ status: 'running', createdAt: new Date(ms), startedAt: new Date(ms + 1) });
            await store.insertJob(job);
            const got = await store.getJob(job.id);
            assert.equal(got?.createdAt.getTime(), ms);
            assert.equal(got?.startedAt?.getTime(), ms + 1);
          }
        }));

      it('releases its caches and answers as before, also in a write burst', () =>
        withStore(async (store) => {
          const jobs = await Promise.all(Array.from({ length: 50 }, () => inserted(store)));
          // A release beside writes in flight takes its own turn on the connection and leaves them whole.
          const more = Array.from({ length: 20 }, () => makeJob());
          await Promise.all([...more.map((job) => store.insertJob(job)), store.releaseMemory()]);
          await store.releaseMemory();
          for (const job of [...jobs, ...more]) assert.deepStrictEqual(await store.getJob(job.id), job);
        }));

      it('answers undefined for an unknown or malformed id', () =>
        withStore(async (store) => {
          await inserted(store);
          assert.equal(await store.getJob(newJobId()), undefined);
          assert.equal(await store.getJob('not-an-id'), undefined);
          assert.equal(await store.getJob(''), undefined);
        }));

      it('rejects a second job with the same id and keeps the first', () =>
        withStore(async (store) => {
          const first = await inserted(store, { owner: 'alice' });
          const second = makeJob({ id: first.id, owner: 'mallory', spec: { labels: { x: 'y' } } });
          await assert.rejects(store.insertJob(second), invalid('id'));
          assert.deepStrictEqual(await store.getJob(first.id), first);
          const page = await store.listJobs({ limit: 10, label: { key: 'x', value: 'y' } });
          assert.deepStrictEqual(page.jobs, [], 'no trace of the refused job');
          const next = await inserted(store);
          assert.deepStrictEqual(await store.getJob(next.id), next, 'the store still works');
        }));

      it('rejects an id that is not a UUIDv7', () =>
        withStore(async (store) => {
          await assert.rejects(store.insertJob(makeJob({ id: 'job-1' })), invalid('id'));
        }));
    });

    describe('state changes', () => {
      it('walks queued → running → stopped, recording each step as returned', () =>
        withStore(async (store) => {
          const job = await inserted(store);
          const startedAt = new Date(AT.getTime() - 5000);
          const running = await store.markStarted(job.id, PROCESS, startedAt);
          assert.deepStrictEqual(running, { ...job, status: 'running', process: PROCESS, startedAt });
          assert.deepStrictEqual(await store.getJob(job.id), running);

          const stop = { at: new Date(AT.getTime() - 100), by: 'bob', graceMs: 2500 };
          const stopping = await store.markStopRequested(job.id, stop);
          assert.deepStrictEqual(stopping, { ...running, stop });
          const forced = await store.markStopForced(job.id);
          assert.deepStrictEqual(forced, { ...stopping, stopForced: true });

          const end = finish('stopped', 'killed by SIGKILL after 2.5 s grace');
          const stopped = await store.markFinished(job.id, end);
          assert.deepStrictEqual(stopped, {
            ...forced,
            status: 'stopped',
            exit: end.exit,
            finishedAt: end.finishedAt,
            outputBytes: end.outputBytes,
          });
          assert.deepStrictEqual(await store.getJob(job.id), stopped);
        }));

      it('records only the first stop request; a second returns the job unchanged', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const first = { at: AT, by: 'alice', graceMs: 1000 };
          const recorded = await store.markStopRequested(job.id, first);
          assert.deepStrictEqual(recorded.stop, first);
          const again = await store.markStopRequested(job.id, { at: new Date(), by: 'bob', graceMs: 1 });
          assert.deepStrictEqual(again, recorded);
          assert.deepStrictEqual(await store.getJob(job.id), recorded);
        }));

      it("keeps a user's stop during the timeout's beside it, the first only, and names it at the end", () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const timeout = { at: AT, by: TIMEOUT_STOPPER, graceMs: 1000 };
          assert.deepStrictEqual((await store.markStopRequested(job.id, timeout)).stop, timeout);
          const again = await store.markStopRequested(job.id, { ...timeout, at: new Date() });
          assert.deepStrictEqual(again.stop, timeout, "the timeout's second stop changes nothing");
          const bob = await store.markStopRequested(job.id, { at: new Date(), by: 'bob', graceMs: 0 });
          assert.deepStrictEqual(
            bob.stop,
            { ...timeout, alsoBy: 'bob' },
            "the timeout's stop stays, at its grace",
          );
          const carol = await store.markStopRequested(job.id, { at: new Date(), by: 'carol', graceMs: 0 });
          assert.deepStrictEqual(carol, bob, 'only the first user is kept');
          assert.deepStrictEqual(await store.getJob(job.id), bob);
          const ended = await store.markFinished(job.id, finish('timed_out', 'timed out after 1 s'));
          assert.equal(ended.exit?.reason, 'timed out after 1 s; stopped by bob meanwhile');
          assert.deepStrictEqual(ended.stop, { ...timeout, alsoBy: 'bob' });
        }));

      it("keeps nothing beside a user's stop: a timeout after it changes nothing", () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const bob = { at: AT, by: 'bob', graceMs: 1000 };
          await store.markStopRequested(job.id, bob);
          const later = await store.markStopRequested(job.id, {
            at: new Date(),
            by: TIMEOUT_STOPPER,
            graceMs: 0,
          });
          assert.deepStrictEqual(later.stop, bob);
          const alice = await store.markStopRequested(job.id, { at: new Date(), by: 'alice', graceMs: 0 });
          assert.deepStrictEqual(alice.stop, bob);
        }));

      it("records a user's stop during the timeout's that comes with the end, only beside the timeout's", () =>
        withStore(async (store) => {
          // Neither stop could be recorded when asked (a full disk): both come with the end.
          const both = await inserted(store, { status: 'running' });
          const stop = { at: AT, by: TIMEOUT_STOPPER, graceMs: 0, alsoBy: 'carol' };
          const ended = await store.markFinished(both.id, { ...finish('timed_out', 'timed out'), stop });
          assert.deepEqual([ended.stop, ended.exit?.reason], [stop, 'timed out; stopped by carol meanwhile']);
          // A user's stop is the first on record: nothing is kept beside it.
          const bobs = await inserted(store, { status: 'running' });
          await store.markStopRequested(bobs.id, { at: AT, by: 'bob', graceMs: 0 });
          const kept = await store.markFinished(bobs.id, { ...finish('stopped', 'stopped by bob'), stop });
          assert.deepEqual(
            [kept.stop, kept.exit?.reason],
            [{ at: AT, by: 'bob', graceMs: 0 }, 'stopped by bob'],
          );
        }));

      it('records a stop request on a queued job, which may then be cancelled', () =>
        withStore(async (store) => {
          const job = await inserted(store);
          const stop = { at: AT, by: 'alice', graceMs: 0 };
          assert.deepStrictEqual((await store.markStopRequested(job.id, stop)).stop, stop);
          const cancelled = await store.markFinished(job.id, finish('cancelled'));
          assert.equal(cancelled.status, 'cancelled');
          assert.deepStrictEqual(cancelled.stop, stop);
          assert.equal(cancelled.startedAt, null);
        }));

      it('records with the end a stop that was not on record, and keeps one that was', () =>
        withStore(async (store) => {
          // A stop asked for while the disk was full is recorded with the job's end (defect 15).
          const unrecorded = await inserted(store, { status: 'running' });
          const stop = { at: AT, by: 'alice', graceMs: 500 };
          const ended = await store.markFinished(unrecorded.id, {
            ...finish('stopped'),
            stop,
            stopForced: true,
          });
          assert.deepStrictEqual(ended.stop, stop);
          assert.equal(ended.stopForced, true);
          assert.deepStrictEqual(await store.getJob(unrecorded.id), ended);

          const recorded = await inserted(store, { status: 'running' });
          await store.markStopRequested(recorded.id, stop);
          const later = { at: new Date(AT.getTime() + 1000), by: 'bob', graceMs: 0 };
          const kept = await store.markFinished(recorded.id, {
            ...finish('stopped'),
            stop: later,
            stopForced: false,
          });
          assert.deepStrictEqual(kept.stop, stop);
          assert.equal(kept.stopForced, false);
        }));

      it('records what a job used with its end, on both paths of markFinished', () =>
        withStore(async (store) => {
          const usage = {
            cpuSeconds: 1.25,
            cpuThrottledSeconds: 0.5,
            memoryPeakBytes: 64 * 1024 * 1024,
            ioReadBytes: null,
            ioWriteBytes: 12_582_912,
            oomKills: 1,
            pidsLimitHits: 0,
          };
          const plain = await inserted(store, { status: 'running' });
          const ended = await store.markFinished(plain.id, { ...finish('failed'), usage });
          assert.deepStrictEqual(ended.usage, usage);
          assert.deepStrictEqual((await store.getJob(plain.id))?.usage, usage);
          const withStop = await inserted(store, { status: 'running' });
          const stop = { at: AT, by: 'alice', graceMs: 0 };
          const stopped = await store.markFinished(withStop.id, { ...finish('stopped'), stop, usage });
          assert.deepStrictEqual(stopped.usage, usage);
          const none = await inserted(store, { status: 'running' });
          assert.equal((await store.markFinished(none.id, finish('succeeded'))).usage, null);
        }));

      it('records a result or its error with the end, and progress only before it (migration 0006)', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const progress = { done: 3, total: 10, message: 'step 3', at: AT };
          const reported = await store.setProgress(job.id, progress);
          assert.deepStrictEqual(reported?.progress, progress);
          const ended = await store.markFinished(job.id, {
            ...finish('succeeded'),
            result: { json: '{"a":1}' },
          });
          assert.deepStrictEqual(ended.progress, progress);
          assert.equal(ended.resultError, null);
          assert.equal(await store.getResult(job.id), '{"a":1}');
          assert.equal(
            await store.setProgress(job.id, { ...progress, done: 4 }),
            undefined,
            'not after the end',
          );
          assert.deepStrictEqual(await store.getJob(job.id), ended);

          const refused = await inserted(store, { status: 'running' });
          const failed = await store.markFinished(refused.id, {
            ...finish('succeeded'),
            result: { error: 'the result is not valid JSON' },
          });
          assert.equal(failed.resultError, 'the result is not valid JSON');
          assert.equal(await store.getResult(refused.id), undefined);
          assert.equal(await store.getResult('01900000-0000-7000-8000-000000000000'), undefined);
        }));

      it('marks a stop forced once; a second call returns the job unchanged', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const forced = await store.markStopForced(job.id);
          assert.equal(forced.stopForced, true);
          assert.deepStrictEqual(await store.markStopForced(job.id), forced);
        }));

      it('throws NotFoundError for an unknown id from every state change', () =>
        withStore(async (store) => {
          await inserted(store);
          const id = newJobId();
          await assert.rejects(store.markStarted(id, PROCESS, AT), notFound(id));
          await assert.rejects(store.markStopRequested(id, { at: AT, by: 'a', graceMs: 1 }), notFound(id));
          await assert.rejects(store.markStopForced(id), notFound(id));
          await assert.rejects(store.markFinished(id, finish('failed')), notFound(id));
        }));

      it('refuses markStarted on a running job, naming its current status', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          await assert.rejects(store.markStarted(job.id, PROCESS, AT), illegal(job.id, 'running', 'running'));
          assert.deepStrictEqual(await store.getJob(job.id), job);
        }));

      it('refuses markFinished on a finished job, naming its final status', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const done = await store.markFinished(job.id, finish('succeeded'));
          await assert.rejects(
            store.markFinished(job.id, finish('failed')),
            illegal(job.id, 'succeeded', 'failed'),
          );
          await assert.rejects(
            store.markFinished(job.id, finish('succeeded')),
            illegal(job.id, 'succeeded', 'succeeded'),
          );
          assert.deepStrictEqual(await store.getJob(job.id), done);
        }));

      it('allows exactly the moves of the transition table and changes nothing when refusing', () =>
        withStore(async (store) => {
          for (const from of JOB_STATUSES) {
            const job = await inserted(store, { status: from });
            if (canTransition(from, 'running')) {
              assert.equal((await store.markStarted(job.id, PROCESS, AT)).status, 'running');
            } else {
              await assert.rejects(store.markStarted(job.id, PROCESS, AT), illegal(job.id, from, 'running'));
              assert.deepStrictEqual(await store.getJob(job.id), job);
            }
            for (const to of FINAL_STATUSES) {
              const other = await inserted(store, { status: from });
              if (canTransition(from, to)) {
                assert.equal((await store.markFinished(other.id, finish(to))).status, to, `${from} → ${to}`);
              } else {
                await assert.rejects(store.markFinished(other.id, finish(to)), illegal(other.id, from, to));
                assert.deepStrictEqual(await store.getJob(other.id), other, `${from} → ${to}`);
              }
            }
          }
        }));

      it('refuses a stop request on a finished job and records nothing', () =>
        withStore(async (store) => {
          for (const status of FINAL_STATUSES) {
            const job = await inserted(store, { status, stop: null });
            await assert.rejects(
              store.markStopRequested(job.id, { at: AT, by: 'bob', graceMs: 10 }),
              illegal(job.id, status, 'stopped'),
            );
            assert.deepStrictEqual(await store.getJob(job.id), job);
          }
        }));

      it('refuses markStopForced unless the job is running', () =>
        withStore(async (store) => {
          // A paused job may be stopped (the stop thaws it first), so a forced kill may be recorded on it.
          for (const status of JOB_STATUSES.filter((s) => s !== 'running' && s !== 'paused')) {
            const job = await inserted(store, { status });
            await assert.rejects(store.markStopForced(job.id), illegal(job.id, status, 'stopped'));
            assert.deepStrictEqual(await store.getJob(job.id), job);
          }
        }));

      it('rejects markFinished to a status that is not final', () =>
        withStore(async (store) => {
          const job = await inserted(store);
          await assert.rejects(store.markFinished(job.id, finish('running')), invalid('status'));
          assert.deepStrictEqual(await store.getJob(job.id), job);
        }));

      it('lets exactly one of two concurrent markFinished on one job win', () =>
        withStore(async (store) => {
          for (let i = 0; i < 20; i++) {
            const job = await inserted(store, { status: 'running' });
            const results = await Promise.allSettled([
              store.markFinished(job.id, finish('succeeded')),
              store.markFinished(job.id, finish('stopped')),
            ]);
            const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
            const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
            assert.equal(won.length, 1);
            assert.equal(lost.length, 1);
            const winner = won[0]!;
            const loserTarget = winner.status === 'succeeded' ? 'stopped' : 'succeeded';
            illegal(job.id, winner.status, loserTarget)(lost[0]);
            assert.deepStrictEqual(await store.getJob(job.id), winner);
          }
        }));

      it('lets exactly one of two concurrent markStarted on one job win', () =>
        withStore(async (store) => {
          const job = await inserted(store);
          const results = await Promise.allSettled([
            store.markStarted(job.id, PROCESS, AT),
            store.markStarted(job.id, { ...PROCESS, pid: 778 }, AT),
          ]);
          const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
          const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
          assert.equal(won.length, 1);
          illegal(job.id, 'running', 'running')(lost[0]);
          assert.deepStrictEqual(await store.getJob(job.id), won[0]);
        }));

      it('keeps exactly one of many concurrent stop requests', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running' });
          const requests = ['a', 'b', 'c', 'd'].map((by, i) => ({
            at: new Date(AT.getTime() + i),
            by,
            graceMs: i,
          }));
          const results = await Promise.all(requests.map((stop) => store.markStopRequested(job.id, stop)));
          const kept = (await store.getJob(job.id))?.stop;
          assert.ok(kept !== null && kept !== undefined);
          assert.ok(requests.some((r) => r.by === kept.by));
          for (const result of results) assert.deepStrictEqual(result.stop, kept);
        }));
    });

    describe('listJobs', () => {
      it('pages ~500 jobs with limit 7: every job exactly once, strictly newest first', () =>
        withStore(async (store) => {
          const jobs = Array.from({ length: 503 }, () => makeJob());
          for (const job of shuffled(jobs)) await store.insertJob(job);
          const listed = await listAll(store, {}, 7);
          const ids = listed.map((j) => j.id);
          assert.deepStrictEqual(ids, newestFirst(jobs));
          for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! > ids[i]!, `ids out of order at ${i}`);
          assert.equal(new Set(ids).size, jobs.length);
          const byId = new Map(jobs.map((j) => [j.id, j]));
          for (const job of listed) assert.deepStrictEqual(job, byId.get(job.id));
        }));

      it('ends with nextCursor null when the last page is exactly full', () =>
        withStore(async (store) => {
          const jobs = Array.from({ length: 14 }, () => makeJob());
          for (const job of jobs) await store.insertJob(job);
          const first = await store.listJobs({ limit: 7 });
          assert.equal(first.jobs.length, 7);
          assert.ok(first.nextCursor !== null);
          const second = await store.listJobs({ limit: 7, cursor: first.nextCursor });
          assert.equal(second.jobs.length, 7);
          assert.equal(second.nextCursor, null);
          const all = await store.listJobs({ limit: 14 });
          assert.equal(all.nextCursor, null);
          assert.deepStrictEqual(
            all.jobs.map((j) => j.id),
            [...first.jobs, ...second.jobs].map((j) => j.id),
          );
        }));

      it('answers an empty page for an empty store or a filter matching nothing', () =>
        withStore(async (store) => {
          assert.deepStrictEqual(await store.listJobs({ limit: 1000 }), { jobs: [], nextCursor: null });
          await inserted(store);
          assert.deepStrictEqual(await store.listJobs({ limit: 1, owner: 'nobody' }), {
            jobs: [],
            nextCursor: null,
          });
        }));

      it('continues strictly after a well-formed cursor even when no job has that id', () =>
        withStore(async (store) => {
          const older = [await inserted(store), await inserted(store)];
          const between = newJobId();
          const newer = await inserted(store);
          const page = await store.listJobs({ limit: 10, cursor: between });
          assert.deepStrictEqual(
            page.jobs.map((j) => j.id),
            newestFirst(older),
          );
          assert.ok(!page.jobs.some((j) => j.id === newer.id));
        }));

      it('filters by status, owner, name, queue, text and label, alone and combined, across pages', () =>
        withStore(async (store) => {
          const owners = ['alice', 'bob', 'carol'];
          const queues = ['default', 'batch', 'fast'];
          const jobs = Array.from({ length: 160 }, (_, i) =>
            makeJob({
              // Every owner gets every status, whatever the number of statuses.
              status: JOB_STATUSES[Math.floor(i / 3) % JOB_STATUSES.length]!,
              owner: owners[i % 3]!,
              spec: {
                name: i % 4 === 0 ? null : `name-${i % 5}`,
                queue: queues[Math.floor(i / 2) % 3]!,
                command: i % 6 === 0 ? '/opt/Backup.sh' : 'echo',
                args: i % 5 === 0 ? ['50%', `Part-${i % 7}`] : [`part-${i % 7}`],
                labels: {
                  ...(i % 2 === 0 ? { team: i % 7 < 3 ? 'a' : 'b' } : {}),
                  ...(i % 3 === 0 ? { env: 'prod' } : {}),
                },
              },
            }),
          );
          for (const job of shuffled(jobs)) await store.insertJob(job);

          const queries: Omit<JobListQuery, 'limit' | 'cursor'>[] = [
            {},
            { status: ['running'] },
            { status: ['succeeded', 'failed', 'queued'] },
            { status: ['queued', 'queued'] },
            { status: JOB_STATUSES },
            { owner: 'bob' },
            { name: 'name-2' },
            { label: { key: 'team', value: 'a' } },
            { label: { key: 'env', value: 'prod' } },
            { owner: 'alice', status: ['running'] },
            { owner: 'alice', status: ['queued', 'lost', 'stopped'] },
            { owner: 'bob', name: 'name-1' },
            { owner: 'carol', label: { key: 'team', value: 'b' } },
            { status: ['failed', 'stopped'], label: { key: 'team', value: 'b' } },
            { status: ['succeeded'], name: 'name-3' },
            { status: ['succeeded', 'failed'], name: 'name-3' },
            { name: 'name-4', label: { key: 'env', value: 'prod' } },
            {
              owner: 'alice',
              status: ['queued', 'running', 'succeeded'],
              name: 'name-1',
              label: { key: 'env', value: 'prod' },
            },
            { queue: 'batch' },
            { queue: 'fast', status: ['failed', 'succeeded'] },
            { queue: 'default', label: { key: 'team', value: 'a' } },
            { text: 'backup' },
            { text: 'PART-3' },
            // Spans the command and its first argument; a name matches too.
            { text: 'echo part-1' },
            { text: 'ME-2' },
            { text: '50%' },
            { text: 'backup', status: ['running', 'queued', 'failed'] },
            { text: 'part-2', label: { key: 'team', value: 'a' } },
            { text: 'part', queue: 'batch', owner: 'alice', status: ['succeeded', 'failed'] },
          ];
          const matchingNothing: typeof queries = [
            { queue: 'nope' },
            { queue: 'Batch' },
            // LIKE wildcards are plain characters.
            { text: 'b_ckup' },
            { text: 'back%' },
            { text: 'backup part' },
            { owner: 'nobody' },
            { label: { key: 'team', value: 'prod' } },
            { label: { key: 'prod', value: 'team' } },
            { owner: 'bob', label: { key: 'env', value: 'a' } },
          ];
          for (const query of [...queries, ...matchingNothing]) {
            const expected = jobs.filter(
              (j) =>
                (query.status === undefined || query.status.includes(j.status)) &&
                (query.owner === undefined || j.owner === query.owner) &&
                (query.name === undefined || j.spec.name === query.name) &&
                (query.queue === undefined || j.spec.queue === query.queue) &&
                (query.text === undefined || matchesText(j, query.text)) &&
                (query.label === undefined || j.spec.labels[query.label.key] === query.label.value),
            );
            const what = JSON.stringify(query);
            for (const limit of [4, 1000]) {
              const listed = await listAll(store, query, limit);
              assert.deepStrictEqual(
                listed.map((j) => j.id),
                newestFirst(expected),
                `${what} limit ${limit}`,
              );
            }
            // Each query of the first list must match something for the test to mean anything.
            assert.equal(
              expected.length > 0,
              queries.includes(query),
              `${what} matches ${expected.length} jobs`,
            );
          }
        }));

      it('rejects a limit that is not an integer from 1 to 1000', () =>
        withStore(async (store) => {
          for (const limit of [
            0,
            -1,
            1001,
            1.5,
            Number.NaN,
            Number.POSITIVE_INFINITY,
            '7',
            undefined,
            null,
          ]) {
            await assert.rejects(
              store.listJobs({ limit } as unknown as JobListQuery),
              invalid('limit'),
              String(limit),
            );
          }
          await store.listJobs({ limit: 1 });
          await store.listJobs({ limit: 1000 });
        }));

      it('rejects a malformed cursor', () =>
        withStore(async (store) => {
          await inserted(store);
          const v4 = '1b4e28ba-2fa1-41d2-883f-0016d3cca427';
          for (const cursor of ['', 'garbage', v4, newJobId().toUpperCase(), `${newJobId()} `, 42, null]) {
            await assert.rejects(
              store.listJobs({ limit: 5, cursor } as unknown as JobListQuery),
              invalid('cursor'),
              String(cursor),
            );
          }
        }));

      it('rejects a queue that is not a string and a text that is not 1 to 200 characters', () =>
        withStore(async (store) => {
          for (const queue of [42, null, ['a']]) {
            await assert.rejects(
              store.listJobs({ limit: 5, queue } as unknown as JobListQuery),
              invalid('queue'),
              JSON.stringify(queue),
            );
          }
          for (const text of ['', 'x'.repeat(201), 7, null]) {
            await assert.rejects(
              store.listJobs({ limit: 5, text } as unknown as JobListQuery),
              invalid('text'),
              JSON.stringify(text),
            );
          }
          await store.listJobs({ limit: 5, text: 'x'.repeat(200) });
        }));

      it('rejects an empty status list and unknown statuses', () =>
        withStore(async (store) => {
          for (const status of [[], ['done'], ['running', 'RUNNING'], 'running']) {
            await assert.rejects(
              store.listJobs({ limit: 5, status } as unknown as JobListQuery),
              invalid('status'),
              JSON.stringify(status),
            );
          }
        }));
    });

    describe('queues and scheduling', () => {
      const NOW = new Date(Date.UTC(2026, 11, 2, 10, 0, 0));
      /** The second attempt of `job` under a retry policy of `attempts` runs, due at NOW. */
      const secondAttempt = (job: Job, attempts = 2) =>
        makeJob({
          attempt: 2,
          retryOf: job.id,
          runAt: NOW,
          hold: 'delay',
          node: job.node,
          spec: { retry: { attempts, backoff: { initialMs: 0, factor: 1, maxMs: 0 } } },
        });
      const queued = (overrides: Parameters<typeof makeJob>[0] = {}) =>
        makeJob({ ...overrides, createdAt: NOW, node: 'node-a' });

      it('admits a job that waits only for a slot, and claims by priority then arrival', () =>
        withStore(async (store) => {
          const jobs = [];
          for (const priority of [0, 5, 0, 9, 5]) {
            const admission = await store.admitJob(queued({ spec: { queue: 'q', priority } }), NOW);
            assert.ok(admission.admitted);
            assert.equal(admission.job.hold, null);
            jobs.push(admission.job);
          }
          const first = await store.claimReady('q', 'node-a', 2);
          assert.deepEqual(
            first.map((j) => j.id),
            [jobs[3]!.id, jobs[1]!.id],
          );
          assert.ok(first.every((j) => j.hold === 'starting' && j.status === 'queued'));
          assert.equal(await store.countActive('q'), 2, 'claimed jobs hold their slots');
          const rest = await store.claimReady('q', 'node-b', 10);
          assert.deepEqual(
            rest.map((j) => j.id),
            [jobs[4]!.id, jobs[0]!.id, jobs[2]!.id],
          );
          assert.deepEqual(await store.claimReady('q', 'node-a', 10), []);
          assert.equal((await store.listStarting('node-a')).length, 2);
          const started = await store.markStarted(first[0]!.id, PROCESS, AT);
          assert.deepEqual([started.status, started.hold], ['running', null]);
          const released = await store.releaseClaim(first[1]!.id, 'node-a');
          assert.equal(released.hold, null);
          assert.deepEqual(
            (await store.listStarting('node-a')).map((j) => j.id),
            [],
          );
          const q = await store.getQueue('q');
          assert.deepEqual([q.running, q.waiting], [4, 1]);
        }));

      it("releases only the claimer's claim; a claim with a stop on record is cancelled, not requeued", () =>
        withStore(async (store) => {
          const admission = await store.admitJob(queued({ spec: { queue: 'rel' } }), NOW);
          assert.ok(admission.admitted);
          const id = admission.job.id;
          assert.equal((await store.claimReady('rel', 'node-a', 1)).length, 1);
          // Released by node-a (swept, say) and claimed by node-d: a late release by node-a is no-op.
          assert.equal((await store.releaseClaim(id, 'node-a')).hold, null);
          assert.equal((await store.claimReady('rel', 'node-d', 1)).length, 1);
          const stale = await store.releaseClaim(id, 'node-a');
          assert.deepEqual([stale.status, stale.hold, stale.node], ['queued', 'starting', 'node-d']);

          // A user stops it while claimed: the stop is recorded on the claim, for its launch.
          const stop = { at: AT, by: 'bob', graceMs: 0 };
          const stopped = await store.cancelQueued(id, stop, 'cancelled by bob');
          assert.deepEqual([stopped.status, stopped.hold], ['queued', 'starting']);
          // The claim given back is the cancel, in the same change: no other node can claim it.
          const cancelled = await store.releaseClaim(id, 'node-d');
          assert.equal(cancelled.status, 'cancelled');
          assert.equal(cancelled.hold, null);
          assert.equal(cancelled.exit?.reason, 'cancelled by bob before it started');
          assert.equal(cancelled.finishedAt?.getTime(), AT.getTime());
          assert.deepEqual(await store.claimReady('rel', 'node-a', 1), []);
        }));

      it("records a failure to start only while the claimer's claim (or its start) stands, else ClaimLostError", () =>
        withStore(async (store) => {
          const retry = { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } };
          const admission = await store.admitJob(queued({ spec: { queue: 'late', retry } }), NOW);
          assert.ok(admission.admitted);
          const { id } = admission.job;
          const failedToStart = { ...finish('failed', 'failed to start: the store did not answer') };
          const lost = (error: unknown): true => {
            assert.ok(error instanceof ClaimLostError, `expected ClaimLostError, got ${String(error)}`);
            assert.equal(error.jobId, id);
            return true;
          };
          // node-a claims it and is cut off; it is declared lost, its claim goes back, and node-b
          // claims and starts the job. node-a's failure to start, written late, must not end it.
          assert.equal((await store.claimReady('late', 'node-a', 1)).length, 1);
          assert.equal((await store.releaseClaim(id, 'node-a')).hold, null);
          const waiting = { ...failedToStart, claimedBy: 'node-a' };
          await assert.rejects(store.markFinished(id, waiting), lost, 'given back: waiting again');
          assert.equal((await store.claimReady('late', 'node-b', 1)).length, 1);
          await assert.rejects(store.markFinished(id, waiting), lost, 'claimed by node-b');
          await store.markStarted(id, PROCESS, AT, 'node-b');
          await assert.rejects(store.markFinished(id, waiting), lost);
          await assert.rejects(store.markRetried(id, waiting, secondAttempt(admission.job, 3)), lost);
          const running = (await store.getJob(id))!;
          assert.deepEqual([running.status, running.node, running.retriedAs], ['running', 'node-b', null]);
          assert.equal((await store.listJobs({ limit: 10 })).jobs.length, 1, 'no next attempt was stored');
          // Its own claim, or its own start (the answer to that commit lost), node-b records.
          const own = await store.markRetried(
            id,
            { ...failedToStart, claimedBy: 'node-b' },
            secondAttempt(admission.job, 3),
          );
          assert.deepEqual([own.status, own.node], ['failed', 'node-b']);
          assert.ok(own.retriedAs);
          const second = await store.admitJob(queued({ spec: { queue: 'late' } }), NOW);
          assert.ok(second.admitted);
          assert.equal((await store.claimReady('late', 'node-b', 1))[0]?.id, second.job.id);
          const claimed = await store.markFinished(second.job.id, { ...failedToStart, claimedBy: 'node-b' });
          assert.deepEqual([claimed.status, claimed.hold], ['failed', null]);
        }));

      it("enforces the queue's concurrency and pause inside the claim, whatever the caller asks", () =>
        withStore(async (store) => {
          await store.putQueue('two', { concurrency: 2 });
          for (let i = 0; i < 5; i++) await store.admitJob(queued({ spec: { queue: 'two' } }), NOW);
          const claimed = await store.claimReady('two', 'node-a', 10);
          assert.equal(claimed.length, 2, 'a queue limited to 2 gives 2 of its 5 ready jobs');
          assert.deepEqual(await store.claimReady('two', 'node-b', 10), [], 'no slot is free');
          await store.markStarted(claimed[0]!.id, PROCESS, AT);
          await store.markPaused(claimed[0]!.id, AT);
          assert.deepEqual(await store.claimReady('two', 'node-b', 10), [], 'a paused job keeps its slot');
          await store.markFinished(claimed[0]!.id, finish('succeeded'));
          assert.equal(
            (await store.claimReady('two', 'node-b', 10)).length,
            1,
            'an ended job frees its slot',
          );
          assert.equal(await store.countActive('two'), 2);

          await store.putQueue('held', { paused: true });
          await store.admitJob(queued({ spec: { queue: 'held' } }), NOW);
          assert.deepEqual(await store.claimReady('held', 'node-a', 10), [], 'a paused queue gives nothing');
          await store.putQueue('held', { paused: false });
          assert.equal((await store.claimReady('held', 'node-a', 10)).length, 1);
        }));

      it('refuses a duplicate dedupe key while the first is queued or running, and a full queue', () =>
        withStore(async (store) => {
          const first = await store.admitJob(queued({ spec: { dedupeKey: 'k' } }), NOW);
          assert.ok(first.admitted);
          const dup = await store.admitJob(queued({ spec: { dedupeKey: 'k' } }), NOW);
          assert.ok(!dup.admitted);
          assert.equal(dup.existing.id, first.job.id);
          await store.markFinished(first.job.id, finish('cancelled'));
          assert.ok((await store.admitJob(queued({ spec: { dedupeKey: 'k' } }), NOW)).admitted);

          await store.putQueue('small', { maxWaiting: 1 });
          assert.ok((await store.admitJob(queued({ spec: { queue: 'small' } }), NOW)).admitted);
          const refused = queued({ spec: { queue: 'small' } });
          await assert.rejects(store.admitJob(refused, NOW), { code: 'QUEUE_FULL' });
          assert.equal(await store.getJob(refused.id), undefined);
        }));

      it("defect 10: dedupe keys are per owner: one user's key neither blocks nor reveals another's", () =>
        withStore(async (store) => {
          const keyed = (owner: string, dedupeScope: string | null = null) =>
            queued({ owner, spec: { dedupeKey: 'nightly', dedupeScope } });
          const alice = await store.admitJob(keyed('alice'), NOW);
          assert.ok(alice.admitted);
          const bob = await store.admitJob(keyed('bob'), NOW);
          assert.ok(bob.admitted, "the same key in bob's scope is bob's own");
          const again = await store.admitJob(keyed('alice'), NOW);
          assert.ok(!again.admitted);
          assert.equal(again.existing.id, alice.job.id);
          // An admin naming alice's scope deduplicates against alice's jobs, not its own.
          const named = await store.admitJob(keyed('admin', 'alice'), NOW);
          assert.ok(!named.admitted);
          assert.equal(named.existing.id, alice.job.id);
          const own = await store.admitJob(keyed('admin'), NOW);
          assert.ok(own.admitted, "the admin's own scope is free");
          // Once alice's job ended, a job of the admin's in alice's scope holds it, round-trip included.
          await store.markFinished(alice.job.id, finish('cancelled'));
          const held = await store.admitJob(keyed('admin', 'alice'), NOW);
          assert.ok(held.admitted);
          assert.deepStrictEqual(await store.getJob(held.job.id), held.job);
          assert.equal(held.job.spec.dedupeScope, 'alice');
          const blocked = await store.admitJob(keyed('alice'), NOW);
          assert.ok(!blocked.admitted);
          assert.equal(blocked.existing.id, held.job.id);
        }));

      it('holds delayed jobs until their time, and tells when the next is due', () =>
        withStore(async (store) => {
          const later = new Date(NOW.getTime() + 60_000);
          const { job } = (await store.admitJob(queued({ runAt: later }), NOW)) as { job: Job };
          assert.equal(job.hold, 'delay');
          assert.deepEqual(await store.nextRunAt(), later);
          assert.equal(await store.promoteDue(new Date(later.getTime() - 1)), 0);
          assert.equal(await store.promoteDue(later), 1);
          assert.equal((await store.getJob(job.id))?.hold, null);
          assert.equal(await store.nextRunAt(), null);
        }));

      it('waits for dependencies, releases on success and cancels in a cascade on failure', () =>
        withStore(async (store) => {
          const a = await inserted(store, { status: 'running', node: 'node-a' });
          const { job: b } = (await store.admitJob(queued({ spec: { after: [a.id] } }), NOW)) as { job: Job };
          const { job: c } = (await store.admitJob(queued({ spec: { after: [b.id] } }), NOW)) as { job: Job };
          assert.deepEqual([b.hold, c.hold], ['after', 'after']);
          await assert.rejects(
            store.admitJob(queued({ spec: { after: [newJobId()] } }), NOW),
            invalid('after[0]'),
          );
          await store.markFinished(a.id, finish('failed', 'exited with code 3'));
          const changed = await store.settleDependents(a.id, NOW);
          assert.deepEqual(
            changed.map((j) => [j.id, j.status]),
            [
              [b.id, 'cancelled'],
              [c.id, 'cancelled'],
            ],
          );
          assert.equal(changed[0]!.exit?.reason, `dependency ${a.id} ended failed (exited with code 3)`);

          const d = await inserted(store, { status: 'running', node: 'node-a' });
          const { job: e } = (await store.admitJob(queued({ spec: { after: [d.id] } }), NOW)) as { job: Job };
          await store.markFinished(d.id, finish('succeeded'));
          assert.deepEqual(await store.settleAll(NOW).then((jobs) => jobs.map((j) => [j.id, j.hold])), [
            [e.id, null],
          ]);
        }));

      it('records a retry with its next attempt, and moves the dependency edges to it', () =>
        withStore(async (store) => {
          const a = await inserted(store, { status: 'running', node: 'node-a' });
          const { job: b } = (await store.admitJob(queued({ spec: { after: [a.id] } }), NOW)) as { job: Job };
          const next = secondAttempt(a);
          const failed = await store.markRetried(a.id, finish('failed'), next);
          assert.equal(failed.exit?.reason, `became failed; attempt 1 of 2, retried as ${next.id}`);
          assert.equal(failed.retriedAs, next.id);
          assert.deepEqual(await store.settleDependents(a.id, NOW), [], 'B waits for the next attempt');
          assert.equal((await store.getJob(b.id))?.hold, 'after');
          await store.markStarted(next.id, PROCESS, AT);
          await store.markFinished(next.id, finish('succeeded'));
          const released = await store.settleDependents(next.id, NOW);
          assert.deepEqual(
            released.map((j) => [j.id, j.hold]),
            [[b.id, null]],
          );
        }));

      it('names the attempt in the reason of a retried run; a run a user asked to stop is not retried', () =>
        withStore(async (store) => {
          const retry = { attempts: 3, backoff: { initialMs: 0, factor: 1, maxMs: 0 } };
          const nextOf = (job: Job) => secondAttempt(job, 3);
          const timeout = { at: AT, by: TIMEOUT_STOPPER, graceMs: 0 };

          const timedOut = await inserted(store, { status: 'running', spec: { retry } });
          await store.markStopRequested(timedOut.id, timeout);
          const next = nextOf(timedOut);
          const retried = await store.markRetried(timedOut.id, finish('timed_out', 'timed out'), next);
          assert.equal(retried.retriedAs, next.id, "the timeout's own stop is retried");
          assert.equal(retried.exit?.reason, `timed out; attempt 1 of 3, retried as ${next.id}`);
          assert.equal((await store.getJob(next.id))?.retryOf, timedOut.id);

          // A user's stop during the timeout's, recorded by whichever node: no retry, nothing queued.
          const alsoStopped = await inserted(store, { status: 'running', spec: { retry } });
          const { job: waiting } = (await store.admitJob(
            queued({ spec: { after: [alsoStopped.id] } }),
            NOW,
          )) as {
            job: Job;
          };
          await store.markStopRequested(alsoStopped.id, timeout);
          await store.markStopRequested(alsoStopped.id, { at: AT, by: 'bob', graceMs: 0 });
          const refused = nextOf(alsoStopped);
          const ended = await store.markRetried(alsoStopped.id, finish('timed_out', 'timed out'), refused);
          assert.deepEqual(
            [ended.status, ended.retriedAs, ended.exit?.reason],
            ['timed_out', null, 'timed out; stopped by bob meanwhile'],
          );
          assert.equal(await store.getJob(refused.id), undefined, 'the next attempt is not stored');
          const settled = await store.settleDependents(alsoStopped.id, NOW);
          assert.deepEqual(
            settled.map((j) => [j.id, j.status]),
            [[waiting.id, 'cancelled']],
            'its dependents wait for it, not for an attempt that never comes',
          );

          // A user's stop on record (a failed start of a job stopped while claimed), or one that
          // comes with the end (it could not be recorded when asked): no retry either.
          const claimed = await inserted(store, { spec: { retry } });
          await store.markStopRequested(claimed.id, { at: AT, by: 'bob', graceMs: 0 });
          const failed = await store.markRetried(
            claimed.id,
            finish('failed', 'failed to start'),
            nextOf(claimed),
          );
          assert.deepEqual([failed.retriedAs, failed.exit?.reason], [null, 'failed to start']);
          const late = await inserted(store, { status: 'running', spec: { retry } });
          const lateEnd = { ...finish('failed'), stop: { at: AT, by: 'bob', graceMs: 0 } };
          const lateStopped = await store.markRetried(late.id, lateEnd, nextOf(late));
          assert.deepEqual([lateStopped.retriedAs, lateStopped.stop], [null, lateEnd.stop]);
        }));

      it('takes two attempts of one chain in `after` as one dependency, and refuses a chain whose later attempt was deleted', () =>
        withStore(async (store) => {
          const a = await inserted(store, { status: 'running', node: 'node-a' });
          const next = secondAttempt(a);
          await store.markRetried(a.id, finish('failed'), next);
          await store.markStarted(next.id, PROCESS, AT);
          await store.markFinished(next.id, finish('succeeded'));
          const { job: both } = (await store.admitJob(queued({ spec: { after: [a.id, next.id] } }), NOW)) as {
            job: Job;
          };
          assert.deepEqual([both.status, both.hold], ['queued', null], 'ready: the chain succeeded');
          // Nothing waits on the last attempt any more: it may be deleted, and then how the chain
          // ended is not known. A job naming the chain is refused, not left waiting for good.
          await store.cancelQueued(both.id, { at: AT, by: 'bob', graceMs: 0 }, 'cancelled by bob');
          assert.ok(await store.deleteJob(next.id));
          await assert.rejects(
            store.admitJob(queued({ spec: { after: [a.id] } }), NOW),
            (err: ValidationError) =>
              err instanceof ValidationError &&
              err.field === 'after[0]' &&
              err.message.includes(`retried as ${next.id}, which has been deleted`),
          );
        }));

      it('cancels a queued job at once, but only records the stop of one being started', () =>
        withStore(async (store) => {
          const stop = { at: AT, by: 'bob', graceMs: 1000 };
          const waiting = await inserted(store);
          const cancelled = await store.cancelQueued(waiting.id, stop, 'cancelled by bob');
          assert.deepEqual(
            [cancelled.status, cancelled.exit?.reason, cancelled.stop?.by],
            ['cancelled', 'cancelled by bob', 'bob'],
          );
          await store.insertJob({ ...makeJob(), id: newJobId() });
          const [claimed] = await store.claimReady('default', 'node-a', 1);
          const recorded = await store.cancelQueued(claimed!.id, stop, 'cancelled by bob');
          assert.deepEqual(
            [recorded.status, recorded.hold, recorded.stop?.by],
            ['queued', 'starting', 'bob'],
          );
          const running = await inserted(store, { status: 'running' });
          await assert.rejects(
            store.cancelQueued(running.id, stop, 'x'),
            illegal(running.id, 'running', 'cancelled'),
          );
        }));

      it('pauses and resumes a running job only', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'running', node: 'node-a' });
          const paused = await store.markPaused(job.id, AT);
          assert.deepEqual([paused.status, paused.pausedAt], ['paused', AT]);
          assert.deepEqual(
            (await store.listRunning('node-a')).map((j) => j.id),
            [job.id],
            'recovery adopts paused jobs too',
          );
          await assert.rejects(store.markPaused(job.id, AT), illegal(job.id, 'paused', 'paused'));
          const resumed = await store.markResumed(job.id);
          assert.deepEqual([resumed.status, resumed.pausedAt], ['running', null]);
          await assert.rejects(store.markResumed(job.id), illegal(job.id, 'running', 'running'));
          await store.markPaused(job.id, AT);
          const stopped = await store.markFinished(job.id, finish('stopped'));
          assert.equal(stopped.pausedAt, null);
        }));

      it('keeps queue settings, changing only what is given', () =>
        withStore(async (store) => {
          assert.deepEqual(await store.getQueue('fresh'), {
            name: 'fresh',
            concurrency: null,
            maxWaiting: null,
            paused: false,
            defaultLimits: {},
            maxLimits: {},
            isolation: null,
            running: 0,
            waiting: 0,
          });
          await store.putQueue('fresh', { concurrency: 3, paused: true });
          const changed = await store.putQueue('fresh', { maxWaiting: 10 });
          assert.deepEqual([changed.concurrency, changed.maxWaiting, changed.paused], [3, 10, true]);
          const cleared = await store.putQueue('fresh', { concurrency: null });
          assert.equal(cleared.concurrency, null);
          const limited = await store.putQueue('fresh', {
            defaultLimits: { memory: 1024 ** 3 },
            maxLimits: { memory: 4 * 1024 ** 3, cpu: 2 },
          });
          assert.deepEqual(
            [limited.defaultLimits, limited.maxLimits, limited.maxWaiting],
            [{ memory: 1024 ** 3 }, { memory: 4 * 1024 ** 3, cpu: 2 }, 10],
          );
          assert.deepEqual((await store.queueDefaults('fresh')).limits, {
            defaults: { memory: 1024 ** 3 },
            maxima: { memory: 4 * 1024 ** 3, cpu: 2 },
          });
          assert.deepEqual(await store.queueDefaults('never-named'), {
            limits: { defaults: {}, maxima: {} },
            isolation: null,
          });
          await store.putQueue('fresh', { defaultLimits: {}, maxLimits: {} });
          // An isolation default is kept as given, read alone at each submit, and cleared by null.
          const isolation = { pid: true, mount: { readOnly: ['/etc'] } };
          assert.deepEqual((await store.putQueue('fresh', { isolation })).isolation, isolation);
          assert.deepEqual((await store.putQueue('fresh', { paused: false })).isolation, isolation);
          assert.deepEqual(await store.queueDefaults('fresh'), {
            limits: { defaults: {}, maxima: {} },
            isolation,
          });
          await store.putQueue('fresh', { isolation: null, paused: true });
          assert.equal((await store.queueDefaults('fresh')).isolation, null);
          assert.deepEqual(
            (await store.listQueues()).map((q) => q.name),
            ['default', 'fresh'],
          );
          assert.deepEqual(await store.listReadyQueues(), [], 'no queue has a job ready');
          await store.admitJob(queued({ spec: { queue: 'fresh' } }), NOW);
          await store.admitJob(queued({ spec: { queue: 'other' } }), NOW);
          await store.admitJob(
            queued({ spec: { queue: 'later' }, runAt: new Date(NOW.getTime() + 1000) }),
            NOW,
          );
          assert.deepEqual(
            (await store.listReadyQueues()).map((q) => [q.name, q.concurrency]),
            [
              ['fresh', null],
              ['other', null],
            ],
          );
        }));
    });

    describe('deleting finished jobs', () => {
      const T0 = Date.UTC(2026, 0, 1);
      /** A finished job of `owner` that finished `ms` after T0. */
      const finishedAt = (store: JobStore, ms: number, owner = 'alice', status: JobStatus = 'succeeded') =>
        inserted(store, { status, owner, finishedAt: new Date(T0 + ms) });

      it('deletes a finished job with its labels and edges, and records its directory to remove', () =>
        withStore(async (store) => {
          const job = await inserted(store, { status: 'failed', spec: { labels: { team: 'x' } } });
          const kept = await inserted(store, { status: 'failed', spec: { labels: { team: 'x' } } });
          assert.deepStrictEqual(await store.deleteJob(job.id), job);
          assert.equal(await store.getJob(job.id), undefined);
          const page = await store.listJobs({ limit: 10, label: { key: 'team', value: 'x' } });
          assert.deepEqual(
            page.jobs.map((j) => j.id),
            [kept.id],
            'its label rows went with it',
          );
          assert.deepEqual(await store.listDirsToRemove(10), [job.id]);
          await store.forgetDirsRemoved([job.id]);
          assert.deepEqual(await store.listDirsToRemove(10), []);
          await assert.rejects(store.deleteJob(job.id), notFound(job.id));
        }));

      it("deletes a job's webhook deliveries with it (their bodies hold the job's command and environment)", () =>
        withStore(async (store) => {
          const webhooks = (store as unknown as { webhooks: WebhookStore }).webhooks;
          const job = await inserted(store, { status: 'failed' });
          const kept = await inserted(store, { status: 'failed' });
          await webhooks.appendOutbox('job:finished', job, new Date(T0));
          const [event] = await webhooks.readOutbox(1);
          await webhooks.fanOut(event!.seq, [
            delivery('01900000-0000-7000-8000-0000000000e1', {
              jobId: job.id,
              status: 'delivered',
              nextAt: null,
            }),
            delivery('01900000-0000-7000-8000-0000000000e2', { jobId: job.id }),
            delivery('01900000-0000-7000-8000-0000000000e3', { jobId: kept.id }),
          ]);
          await store.deleteJob(job.id);
          const left = await webhooks.listDeliveries({ limit: 10 });
          assert.deepEqual(
            left.deliveries.map((d) => d.jobId),
            [kept.id],
          );
        }));

      it("deletes a job's outbox events not yet fanned out with it, by deleteJob and by retention", () =>
        withStore(async (store) => {
          const webhooks = (store as unknown as { webhooks: WebhookStore }).webhooks;
          // Jobs with a notify, inserted finished: the triggers write their queued and finished
          // events, as they would right before a delete that comes before the dispatcher's pass.
          const notify = { url: 'https://example.com/h', events: ['job:finished' as const] };
          const byDelete = await finishedAt(store, 1, 'alice', 'failed');
          const gone = await inserted(store, {
            status: 'failed',
            finishedAt: new Date(T0 + 2),
            spec: { notify, env: { TOKEN: 'secret' } },
          });
          const byRetention = await inserted(store, {
            status: 'succeeded',
            finishedAt: new Date(T0 + 3),
            spec: { notify },
          });
          const kept = await inserted(store, {
            status: 'failed',
            finishedAt: new Date(T0 + 9),
            spec: { notify },
          });
          await webhooks.appendOutbox('job:progress', byDelete, new Date(T0));
          const ids = new Set([byDelete.id, gone.id, byRetention.id, kept.id]);
          const outboxJobs = async () =>
            (await webhooks.readOutbox(100)).map((e) => e.job.id).filter((id) => ids.has(id));
          assert.equal(
            (await outboxJobs()).length,
            7,
            'each notify job queued and finished, and one progress',
          );
          await store.deleteJob(byDelete.id);
          await store.deleteJob(gone.id);
          assert.deepEqual(
            await store.deleteFinished({ before: { finishedAt: new Date(T0 + 5), id: '' }, limit: 10 }),
            [byRetention.id],
          );
          assert.deepEqual(await outboxJobs(), [kept.id, kept.id]);
        }));

      it('refuses to delete a queued, running or paused job, naming its status, and deletes nothing', () =>
        withStore(async (store) => {
          for (const status of ['queued', 'running', 'paused'] as const) {
            const job = await inserted(store, { status });
            await assert.rejects(store.deleteJob(job.id), (error: unknown) => {
              assert.ok(error instanceof NotFinishedError, String(error));
              assert.equal(error.code, 'NOT_FINISHED');
              assert.equal(error.status, status);
              return true;
            });
            assert.deepStrictEqual(await store.getJob(job.id), job);
          }
          assert.deepEqual(await store.listDirsToRemove(10), []);
        }));

      it('refuses to delete, and retention skips, a finished job that a queued job waits for', () =>
        withStore(async (store) => {
          const now = new Date(T0);
          const a = await inserted(store, { status: 'succeeded', finishedAt: new Date(T0 + 1) });
          const other = await inserted(store, { status: 'running' });
          const { job: c } = (await store.admitJob(
            makeJob({ createdAt: now, spec: { after: [a.id, other.id] } }),
            now,
          )) as { job: Job };
          assert.equal(c.hold, 'after');
          await assert.rejects(store.deleteJob(a.id), (error: unknown) => {
            assert.ok(error instanceof InUseError, String(error));
            assert.deepEqual(error.dependents, [c.id]);
            return true;
          });
          const bound = { finishedAt: new Date(T0 + 1000), id: '' };
          assert.deepEqual(await store.deleteFinished({ before: bound, limit: 10 }), []);
          assert.ok(await store.getJob(a.id));
          // Once the dependent ended, the dependency may go, and its edges with it.
          await store.markFinished(other.id, finish('failed'));
          await store.settleDependents(other.id, now);
          assert.equal((await store.getJob(c.id))?.status, 'cancelled');
          const deleted = await store.deleteFinished({
            before: { finishedAt: new Date(8e15), id: '' },
            limit: 10,
          });
          assert.deepEqual(new Set(deleted), new Set([a.id, other.id, c.id]));
          // Read before (a store may keep finished jobs at hand), gone after.
          for (const id of deleted) assert.equal(await store.getJob(id), undefined);
        }));

      it('cuts at the age limit, the count limit, or the later of both', () =>
        withStore(async (store) => {
          const jobs = [];
          for (let i = 0; i < 10; i++) jobs.push(await finishedAt(store, i * 1000));
          await inserted(store, { status: 'running' });
          await inserted(store, { status: 'queued' });
          assert.equal(await store.retentionBound({ finishedBefore: null, keepNewest: null }), null);
          assert.equal(await store.retentionBound({ finishedBefore: null, keepNewest: 11 }), null, 'all fit');
          const exact = await store.retentionBound({ finishedBefore: null, keepNewest: 10 });
          assert.deepEqual(await store.deleteFinished({ before: exact!, limit: 10 }), [], 'all ten are kept');
          assert.deepStrictEqual(
            await store.retentionBound({ finishedBefore: new Date(T0 + 3500), keepNewest: null }),
            {
              finishedAt: new Date(T0 + 3500),
              id: '',
            },
          );
          assert.deepStrictEqual(await store.retentionBound({ finishedBefore: null, keepNewest: 4 }), {
            finishedAt: jobs[6]!.finishedAt,
            id: jobs[6]!.id,
          });
          // Keep 8 (cut before jobs[2]) but nothing older than T0 + 3500 (cut before jobs[4]): the later.
          const both = await store.retentionBound({ finishedBefore: new Date(T0 + 3500), keepNewest: 8 });
          assert.deepStrictEqual(both, { finishedAt: new Date(T0 + 3500), id: '' });
          const batch1 = await store.deleteFinished({ before: both!, limit: 3 });
          const batch2 = await store.deleteFinished({ before: both!, limit: 3 });
          assert.deepEqual(
            batch1,
            jobs.slice(0, 3).map((j) => j.id),
            'oldest first',
          );
          assert.deepEqual(batch2, [jobs[3]!.id], 'a short batch: nothing left before the bound');
          assert.deepEqual(
            await store.listDirsToRemove(10),
            jobs
              .slice(0, 4)
              .map((j) => j.id)
              .sort(),
          );
          const keepNone = await store.retentionBound({ finishedBefore: null, keepNewest: 0 });
          assert.ok(keepNone);
          assert.equal((await store.deleteFinished({ before: keepNone, limit: 100 })).length, 6);
          const left = await store.listJobs({ limit: 100 });
          assert.deepEqual(left.jobs.map((j) => j.status).sort(), ['queued', 'running'], 'active jobs stay');
        }));

      it("deletes only one owner's jobs when asked", () =>
        withStore(async (store) => {
          const alice = await finishedAt(store, 1, 'alice', 'failed');
          const bob = await finishedAt(store, 2, 'bob', 'failed');
          const before = { finishedAt: new Date(T0 + 10), id: '' };
          assert.deepEqual(await store.deleteFinished({ before, owner: 'bob', limit: 10 }), [bob.id]);
          assert.ok(await store.getJob(alice.id));
          await assert.rejects(store.deleteFinished({ before, limit: 0 }), invalid('limit'));
        }));
    });

    describe('how many queues', () => {
      const T0 = Date.UTC(2026, 0, 1);
      const NOW = new Date(T0);
      const names = async (store: JobStore) => (await store.listQueues()).map((q) => q.name);
      const finishedIn = (store: JobStore, queue: string, ms = 1) =>
        inserted(store, { status: 'succeeded', finishedAt: new Date(T0 + ms), spec: { queue } });
      const everything = { before: { finishedAt: new Date(8e15), id: '' }, limit: 100 };
      /** A queue is refused: `ValidationError` on `queue`, naming the limit and how to raise it. */
      const overLimit = (queue: string, max: number) => (error: unknown) => {
        assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
        assert.equal(error.field, 'queue');
        assert.match(error.message, new RegExp(`"${queue}" would be a new one`));
        assert.match(error.message, new RegExp(`maximum of ${max} queues`));
        assert.match(error.message, /--max-queues/);
        assert.match(error.message, /JOBWORKER_MAX_QUEUES/);
        return true;
      };

      it('forgets a queue without settings with its last job, by deleteJob and by retention, and tells', () =>
        withStore(async (store) => {
          const told: string[][] = [];
          const stop = store.onQueuesForgotten((forgotten) => told.push([...forgotten]));
          const one = await finishedIn(store, 'one');
          const two = await finishedIn(store, 'two');
          const busy = [await finishedIn(store, 'busy', 2), await finishedIn(store, 'busy', 3)];
          const active = await inserted(store, { status: 'running', spec: { queue: 'busy' } });
          await store.putQueue('set', { concurrency: 2 });
          const set = await finishedIn(store, 'set');
          // Settings put back to their defaults: nothing is left that the row would keep.
          await store.putQueue('reset', { paused: true });
          await store.putQueue('reset', { paused: false });
          const reset = await finishedIn(store, 'reset');
          const dflt = await finishedIn(store, 'default');
          assert.deepEqual(await names(store), ['busy', 'default', 'one', 'reset', 'set', 'two']);

          await store.deleteJob(one.id);
          assert.deepEqual(await names(store), ['busy', 'default', 'reset', 'set', 'two']);
          assert.deepEqual(told, [['one']]);
          await store.deleteJob(busy[0]!.id);
          await store.deleteJob(set.id);
          await store.deleteJob(dflt.id);
          assert.deepEqual(await names(store), ['busy', 'default', 'reset', 'set', 'two'], 'each still held');
          assert.deepEqual(told, [['one']]);

          const deleted = await store.deleteFinished(everything);
          assert.deepEqual(new Set(deleted), new Set([two.id, busy[1]!.id, reset.id]));
          assert.deepEqual(await names(store), ['busy', 'default', 'set'], 'busy has a running job');
          assert.deepEqual(told, [['one'], ['reset', 'two']]);
          await store.markFinished(active.id, finish('succeeded'));
          stop();
          await store.deleteFinished(everything);
          assert.deepEqual(await names(store), ['default', 'set']);
          assert.deepEqual(told, [['one'], ['reset', 'two']], 'no more telling once stopped');
          assert.equal((await store.getQueue('set')).concurrency, 2, 'its settings are kept');

          // A forgotten queue is made again by the next job that names it, and dispatched as before.
          const again = await store.admitJob(makeJob({ createdAt: NOW, spec: { queue: 'one' } }), NOW);
          assert.ok(again.admitted);
          assert.deepEqual(await names(store), ['default', 'one', 'set']);
          assert.deepEqual(
            (await store.listReadyQueues()).map((q) => q.name),
            ['one'],
          );
          assert.deepEqual(
            (await store.claimReady('one', 'node-a', 5)).map((j) => j.id),
            [again.job.id],
          );
        }));

      it('refuses a job naming a new queue once the store holds maxQueues, and nothing else', () =>
        withStore(async (store) => {
          const admit = (queue: string, maxQueues?: number | null) =>
            store.admitJob(
              makeJob({ createdAt: NOW, spec: { queue } }),
              NOW,
              maxQueues === undefined ? undefined : { maxQueues },
            );
          // `default` is one of the three.
          assert.ok((await admit('q1', 3)).admitted);
          assert.ok((await admit('q2', 3)).admitted);
          await assert.rejects(admit('q3', 3), overLimit('q3', 3));
          assert.deepEqual(await names(store), ['default', 'q1', 'q2'], 'no row for the refused queue');
          assert.deepEqual((await store.listJobs({ limit: 10, queue: 'q3' })).jobs, [], 'nor a job');
          assert.ok((await admit('q1', 3)).admitted, 'an existing queue takes jobs at the limit');
          assert.ok((await admit('default', 3)).admitted);
          // An explicit creation (an admin's PUT) is not limited; the queue then takes jobs.
          await store.putQueue('q3', { concurrency: 1 });
          assert.ok((await admit('q3', 3)).admitted);
          await assert.rejects(admit('q4', 4), overLimit('q4', 4));
          assert.ok((await admit('q4')).admitted, 'no limit unless one is given');
          assert.ok((await admit('q5', null)).admitted);
          assert.deepEqual(await names(store), ['default', 'q1', 'q2', 'q3', 'q4', 'q5']);

          // A forgotten queue makes room for a new one.
          const [q5] = (await store.listJobs({ limit: 1, queue: 'q5' })).jobs;
          await store.cancelQueued(q5!.id, { at: NOW, by: 'alice', graceMs: 0 }, 'cancelled by alice');
          await store.deleteJob(q5!.id);
          assert.ok((await admit('q6', 6)).admitted);
          await assert.rejects(admit('q7', 6), overLimit('q7', 6));
        }));

      it('previews an admission: the answer admitJob would give, and nothing kept', () =>
        withStore(async (store) => {
          const preview = (
            spec: NonNullable<Parameters<typeof makeJob>[0]>['spec'],
            maxQueues: number | null = null,
          ) => {
            const job = makeJob({ createdAt: NOW, spec });
            return { job, previewed: store.previewAdmission(job, NOW, { maxQueues }) };
          };
          const fresh = preview({ queue: 'p1', dedupeKey: 'k' });
          const answer = await fresh.previewed;
          assert.ok(answer.admitted);
          assert.equal(answer.job.id, fresh.job.id);
          assert.equal(await store.getJob(fresh.job.id), undefined, 'no job kept');
          assert.deepEqual(await names(store), ['default'], 'no queue row kept');
          const held = await store.admitJob(
            makeJob({ createdAt: NOW, spec: { queue: 'p1', dedupeKey: 'k' } }),
            NOW,
          );
          assert.ok(held.admitted);
          const dup = await preview({ queue: 'p1', dedupeKey: 'k' }).previewed;
          assert.ok(!dup.admitted);
          assert.equal(dup.existing.id, held.job.id);
          await assert.rejects(preview({ queue: 'p2' }, 2).previewed, overLimit('p2', 2));
          await store.putQueue('none', { maxWaiting: 0 });
          await assert.rejects(preview({ queue: 'none' }).previewed, { code: 'QUEUE_FULL' });
          await assert.rejects(preview({ after: [newJobId(NOW.getTime())] }).previewed, {
            code: 'VALIDATION_FAILED',
            field: 'after[0]',
          });
          assert.equal((await store.listJobs({ limit: 10 })).jobs.length, 1, 'only the admitted job');
        }));

      it('holds maxQueues exactly under concurrent admissions of new queues', () =>
        withStore(async (store) => {
          const outcomes = await Promise.allSettled(
            Array.from({ length: 12 }, (_, i) =>
              store.admitJob(makeJob({ createdAt: NOW, spec: { queue: `race-${i}` } }), NOW, {
                maxQueues: 5,
              }),
            ),
          );
          const admitted = outcomes.filter((o) => o.status === 'fulfilled');
          const refused = outcomes.filter((o) => o.status === 'rejected');
          assert.equal(admitted.length, 4, 'default and 4 new ones');
          for (const r of refused) overLimit('race-\\d+', 5)((r as PromiseRejectedResult).reason);
          assert.equal((await store.listQueues()).length, 5);
          // Many admissions to the same new queue at once: one row, every job admitted.
          const same = await Promise.all(
            Array.from({ length: 8 }, () =>
              store.admitJob(makeJob({ createdAt: NOW, spec: { queue: 'shared' } }), NOW, { maxQueues: 6 }),
            ),
          );
          assert.ok(same.every((a) => a.admitted));
          assert.equal((await store.getQueue('shared')).waiting, 8);
          assert.equal((await store.listQueues()).length, 6);
        }));

      it('lists every queue with the counts getQueue gives it', () =>
        withStore(async (store) => {
          await store.putQueue('empty', { maxWaiting: 9 });
          for (let i = 0; i < 3; i++)
            await store.admitJob(makeJob({ createdAt: NOW, spec: { queue: 'a' } }), NOW);
          await store.admitJob(makeJob({ createdAt: NOW, spec: { queue: 'b' } }), NOW);
          await store.admitJob(
            makeJob({ createdAt: NOW, spec: { queue: 'b' }, runAt: new Date(T0 + 60_000) }),
            NOW,
          );
          const [claimed, started] = await store.claimReady('a', 'node-a', 2);
          await store.markStarted(started!.id, PROCESS, AT);
          await store.markPaused(started!.id, AT);
          assert.ok(claimed);
          await finishedIn(store, 'a');
          const listed = await store.listQueues();
          assert.deepEqual(
            listed.map((q) => [q.name, q.running, q.waiting, q.maxWaiting]),
            [
              ['a', 2, 1, null],
              ['b', 0, 2, null],
              ['default', 0, 0, null],
              ['empty', 0, 0, 9],
            ],
          );
          for (const q of listed) assert.deepStrictEqual(q, await store.getQueue(q.name), q.name);
        }));
    });

    describe('listJobs by id prefix', () => {
      it('lists the jobs whose id starts with a prefix, within an owner when given', () =>
        withStore(async (store) => {
          const jobs = [];
          for (let i = 0; i < 5; i++)
            jobs.push(await inserted(store, { owner: i % 2 === 0 ? 'alice' : 'bob' }));
          const target = jobs[2]!;
          const page = await store.listJobs({ idPrefix: target.id.slice(0, 30), limit: 10 });
          assert.deepEqual(
            page.jobs.map((j) => j.id),
            [target.id],
          );
          const full = await store.listJobs({ idPrefix: target.id, limit: 10 });
          assert.deepEqual(
            full.jobs.map((j) => j.id),
            [target.id],
            'a whole id is its own prefix',
          );
          const wide = await store.listJobs({ idPrefix: target.id.slice(0, 1), limit: 10 });
          assert.deepEqual(newestFirst(wide.jobs), newestFirst(jobs));
          const bobs = await store.listJobs({ idPrefix: target.id.slice(0, 1), owner: 'bob', limit: 10 });
          assert.deepEqual(newestFirst(bobs.jobs), newestFirst([jobs[1]!, jobs[3]!]));
          const none = await store.listJobs({ idPrefix: target.id.slice(0, 30), owner: 'bob', limit: 10 });
          assert.deepEqual(none.jobs, [], "another owner's id is not listed");
          for (const bad of ['', 'ABC', 'xyz', 'a'.repeat(37)]) {
            await assert.rejects(store.listJobs({ idPrefix: bad, limit: 1 }), invalid('idPrefix'));
          }
        }));
    });

    describe('listRunning', () => {
      it('returns exactly the running jobs of that node', () =>
        withStore(async (store) => {
          const mine = [
            await inserted(store, { status: 'running', node: 'node-a' }),
            await inserted(store, { status: 'running', node: 'node-a' }),
          ];
          await inserted(store, { status: 'running', node: 'node-b' });
          await inserted(store, { status: 'queued', node: 'node-a' });
          for (const status of FINAL_STATUSES) await inserted(store, { status, node: 'node-a' });
          const started = await store.markStarted(
            (await inserted(store, { node: 'node-a' })).id,
            PROCESS,
            AT,
          );
          const ended = await inserted(store, { status: 'running', node: 'node-a' });
          await store.markFinished(ended.id, finish('lost'));

          const running = await store.listRunning('node-a');
          assert.deepStrictEqual(newestFirst(running), newestFirst([...mine, started]));
          const byId = new Map([...mine, started].map((j) => [j.id, j]));
          for (const job of running) assert.deepStrictEqual(job, byId.get(job.id));
          assert.equal((await store.listRunning('node-b')).length, 1);
          assert.deepStrictEqual(await store.listRunning('node-z'), []);
        }));
    });

    describe('takeOverJobs', () => {
      const NOW = new Date(Date.UTC(2026, 11, 2, 10, 0, 0));
      it(
        traits.shared
          ? 'takes over nothing: the nodes sharing the store run their own jobs'
          : 'takes over every job running, paused or being started under another node name, and nothing else',
        () =>
          withStore(async (store) => {
            const running = [
              await inserted(store, { status: 'running', node: 'old-host' }),
              await inserted(store, { status: 'running', node: 'older-host' }),
            ];
            const paused = await inserted(store, { status: 'paused', node: 'old-host' });
            const admitted = await store.admitJob(makeJob({ createdAt: NOW, spec: { queue: 'q' } }), NOW);
            assert.ok(admitted.admitted);
            const [claimed] = await store.claimReady('q', 'old-host', 1);
            assert.equal(claimed?.id, admitted.job.id);
            const own = await inserted(store, { status: 'running', node: 'new-host' });
            const left = [
              await inserted(store, { status: 'queued', node: 'old-host' }),
              ...(await Promise.all(
                FINAL_STATUSES.map((status) => inserted(store, { status, node: 'old-host' })),
              )),
            ];

            const taken = await store.takeOverJobs('new-host');
            const ids = (jobs: readonly Job[]) => jobs.map((j) => j.id).sort();
            if (traits.shared) {
              assert.deepStrictEqual(taken, []);
              assert.deepStrictEqual(ids(await store.listRunning('new-host')), [own.id]);
              assert.deepStrictEqual(ids(await store.listRunning('old-host')), ids([running[0]!, paused]));
              assert.deepStrictEqual(ids(await store.listStarting('old-host')), [claimed!.id]);
              return;
            }
            assert.deepStrictEqual(taken, [
              { from: 'old-host', jobs: 3 },
              { from: 'older-host', jobs: 1 },
            ]);
            assert.deepStrictEqual(ids(await store.listRunning('new-host')), ids([...running, paused, own]));
            assert.deepStrictEqual(ids(await store.listStarting('new-host')), [claimed!.id]);
            assert.deepStrictEqual(await store.listRunning('old-host'), []);
            assert.deepStrictEqual(await store.listStarting('old-host'), []);
            const after = await store.getJob(paused.id);
            assert.deepStrictEqual(after, { ...paused, node: 'new-host' }, 'only its node changed');
            for (const job of left)
              assert.equal(
                (await store.getJob(job.id))?.node,
                'old-host',
                `a ${job.status} job keeps its node`,
              );
            assert.equal((await store.getQueue('q')).running, 1, 'the claim still holds its slot');
            assert.deepStrictEqual(await store.takeOverJobs('new-host'), [], 'nothing is left to take');
          }),
      );
    });
  });
}
