import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import {
  PROGRESS_POLL_MS,
  PROGRESS_WATCH_AFTER_MS,
  ProgressWatcher,
} from '../../src/engine/progress-watcher.ts';
import { jobIoPaths } from '../../src/runtime/job-io.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { makeJob } from '../store/make-job.ts';

describe('ProgressWatcher', () => {
  let dir = '';
  let store: SqliteJobStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-progress-'));
    store = await SqliteJobStore.open(join(dir, 'jobworker.db'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A watcher of the jobs whose io directories are under `dir`/`name`, telling `changed`. */
  const watcherIn = (
    name: string,
    clock: ManualClock,
    changed: (job: Job) => void,
    onError: (err: Error) => void = (err) => assert.fail(err),
  ) => {
    const ioDir = join(dir, name);
    const paths = (id: string) => jobIoPaths(ioDir, id);
    return { watcher: new ProgressWatcher({ store, clock, paths, changed, onError }), paths };
  };

  it('polls on the clock a job whose directory cannot be watched, and stops at finish', async () => {
    const clock = new ManualClock();
    const changed: Job[] = [];
    const errors: Error[] = [];
    const { promise: reported, resolve: report } = Promise.withResolvers<Job>();
    const { watcher, paths: pathsOf } = watcherIn(
      'io',
      clock,
      (job) => {
        changed.push(job);
        report(job);
      },
      (err) => errors.push(err),
    );
    const job = makeJob({ status: 'running' });
    await store.insertJob(job);
    // No directory yet: the kernel watch cannot be set, so the clock takes over.
    watcher.watch(job);
    const paths = pathsOf(job.id);
    await mkdir(paths.dir, { recursive: true });
    await appendFile(paths.progress, '{"done": 4, "total": 8, "message": "half"}\n{"done": 5');
    clock.advance(PROGRESS_POLL_MS);
    const first = await reported;
    assert.deepEqual(
      first.progress && {
        done: first.progress.done,
        total: first.progress.total,
        message: first.progress.message,
      },
      { done: 4, total: 8, message: 'half' },
      'the unfinished last line is not read as progress',
    );
    // The rest of the line arrives; finish reads it once more and stops the polling.
    await appendFile(paths.progress, ', "total": 8}\n');
    await watcher.finish(job.id);
    assert.equal((await store.getJob(job.id))?.progress?.done, 5);
    assert.equal(watcher.size, 0);
    const count = changed.length;
    await appendFile(paths.progress, '{"done": 6}\n');
    clock.advance(PROGRESS_POLL_MS * 3);
    // Its timer is cleared: advancing the clock reads nothing (a read would have reported 6).
    await watcher.finish(job.id);
    assert.equal(changed.length, count, 'no poll after finish');
    assert.equal((await store.getJob(job.id))?.progress?.done, 5);
    assert.deepEqual(errors, []);
  });

  it('of a long stretch written at once, reads only its tail, where the latest line is', async () => {
    const { watcher, paths: pathsOf } = watcherIn('io-long', new ManualClock(), () => {});
    const job = makeJob({ status: 'running' });
    await store.insertJob(job);
    const paths = pathsOf(job.id);
    await mkdir(paths.dir, { recursive: true });
    watcher.watch(job);
    const many = Array.from({ length: 20_000 }, (_, i) => `{"done": ${i}, "message": "step ${i}"}\n`).join(
      '',
    );
    await appendFile(paths.progress, `${many}{"done": 20000, "total": 20000}\n`);
    await watcher.finish(job.id);
    const progress = (await store.getJob(job.id))?.progress;
    assert.deepEqual(progress && { done: progress.done, total: progress.total }, {
      done: 20000,
      total: 20000,
    });
  });

  it('watches a job started just now only after a moment, and its end reads what it wrote', async () => {
    // Each timer's wait is kept: the one set at `watch` must be the delay, not the poll's.
    const waits: number[] = [];
    const clock = new (class extends ManualClock {
      override setTimer(fn: () => void, ms: number) {
        waits.push(ms);
        return super.setTimer(fn, ms);
      }
    })();
    const reports: Job[] = [];
    let report: (job: Job) => void = () => {};
    const { watcher, paths: pathsOf } = watcherIn('io-later', clock, (job) => {
      reports.push(job);
      report(job);
    });
    /**
     * A running job watched from now after the wait, whose directory is made only after the call
     * (a watch set at once would have failed and fallen back to the poll), holding `line`.
     */
    const started = async (line: string) => {
      const job = makeJob({ status: 'running' });
      await store.insertJob(job);
      watcher.watch(job, PROGRESS_WATCH_AFTER_MS);
      const paths = pathsOf(job.id);
      await mkdir(paths.dir, { recursive: true });
      await appendFile(paths.progress, line);
      return { job, paths };
    };
    // A job that lives past the wait: once it ends, the watch is the kernel's.
    const { job: long, paths } = await started('{"done": 1}\n');
    assert.deepEqual(waits, [PROGRESS_WATCH_AFTER_MS], 'one timer: the wait, no poll');
    assert.equal(clock.pending, 1);
    assert.equal(reports.length, 0, 'nothing is read before the wait ends');
    let next = new Promise<Job>((resolve) => {
      report = resolve;
    });
    clock.advance(PROGRESS_WATCH_AFTER_MS);
    assert.equal((await next).progress?.done, 1, 'what it wrote meanwhile is read when the wait ends');
    assert.equal(clock.pending, 0, 'the kernel watch was set: no poll armed');
    assert.deepEqual(waits, [PROGRESS_WATCH_AFTER_MS]);
    // From now on the kernel tells of each write: no clock moves.
    next = new Promise<Job>((resolve) => {
      report = resolve;
    });
    await appendFile(paths.progress, '{"done": 2}\n');
    assert.equal((await next).progress?.done, 2);
    await watcher.finish(long.id);

    // A job that ends within the wait: never watched; its end reads its file and clears the wait.
    const { job: short } = await started('{"done": 7, "total": 7}\n');
    const before = reports.length;
    await watcher.finish(short.id);
    assert.equal((await store.getJob(short.id))?.progress?.done, 7);
    assert.equal(reports.length, before + 1);
    assert.equal(clock.pending, 0, 'the wait is cleared at the end');
    assert.equal(watcher.size, 0);
    clock.advance(PROGRESS_WATCH_AFTER_MS);
    assert.equal(reports.length, before + 1, 'nothing is looked at after the end');

    // A job that ends just as its wait is up: the wait coming during the end's last read starts
    // neither a watch nor a second read beside it.
    const { job: edge } = await started('{"done": 3}\n');
    const ending = watcher.finish(edge.id);
    clock.advance(PROGRESS_WATCH_AFTER_MS);
    // A second end meanwhile (a job relinquished during its end) waits for the same read.
    assert.equal(watcher.finish(edge.id), ending);
    await ending;
    assert.equal(reports.length, before + 2, "one read, the end's");
    assert.equal(reports.at(-1)?.progress?.done, 3);
    assert.equal(clock.pending, 0);
    assert.equal(watcher.size, 0);
    // A closed watcher takes no new job: its wait would outlive it.
    watcher.close();
    watcher.watch(makeJob({ status: 'running' }), PROGRESS_WATCH_AFTER_MS);
    assert.equal(watcher.size, 0);
    assert.equal(clock.pending, 0);
  });
});
