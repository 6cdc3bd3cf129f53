import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineOptions } from '../../src/engine/engine-options.ts';
import { JobEngine } from '../../src/engine/job-engine.ts';
import type { JobStore } from '../../src/store/job-store.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';

export interface Harness {
  readonly engine: JobEngine;
  readonly store: SqliteJobStore;
  readonly dataDir: string;
  /** Opens a fresh engine on the same data directory and database, as a restarted server would. */
  reopen(): Promise<Harness>;
  /** Closes the engine and store (jobs keep running). */
  close(): Promise<void>;
  /** Closes and deletes the data directory. */
  destroy(): Promise<void>;
}

/**
 * `store` as a store the nodes of a cluster share (PostgreSQL) would act in what the engine asks of
 * it: it takes over no job of another node (`JobStore.takeOverJobs`). For the tests of another
 * node's claims on an SQLite store, where only one server ever runs.
 */
export function asSharedStore(store: JobStore): JobStore {
  return new Proxy(store, {
    get(real, key) {
      if (key === 'takeOverJobs') return async () => [];
      const value = Reflect.get(real, key, real) as unknown;
      return typeof value === 'function' ? value.bind(real) : value;
    },
  });
}

export async function openHarness(
  options: Partial<EngineOptions> = {},
  dataDir?: string,
  /** What the engine is given of the store (`asSharedStore`); the harness's `store` is the store itself. */
  wrapStore: (store: JobStore) => JobStore = (store) => store,
): Promise<Harness> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'jw-engine-')));
  const store = await SqliteJobStore.open(join(dir, 'jobworker.db'));
  const engine = await JobEngine.open({
    node: 'test-node',
    ...options,
    dataDir: dir,
    store: wrapStore(store),
  });
  const close = async () => {
    await engine.close();
    await store.close();
  };
  return {
    engine,
    store,
    dataDir: dir,
    reopen: () => openHarness(options, dir, wrapStore),
    close,
    destroy: async () => {
      // Jobs outlive their engine by design: a test that failed before stopping its own would
      // leave them running with their data directory gone. Best effort (the engine may be closed).
      await stopLiveJobs(engine).catch(() => {});
      await close();
      // A job that just ended may still be writing its exit record: rm retries ENOTEMPTY.
      await rm(dir, { recursive: true, force: true, maxRetries: 10 });
    },
  };
}

/** Stops every queued, running or paused job (grace 0) and waits for each to end, for at most 10 s. */
async function stopLiveJobs(engine: JobEngine): Promise<void> {
  const { jobs } = await engine.list({ status: ['queued', 'running', 'paused'], limit: 1000 });
  const signal = AbortSignal.timeout(10_000);
  await Promise.all(
    jobs.map(async (job) => {
      await engine.stop(job.id, { user: job.owner }, { graceMs: 0 });
      await engine.waitFor(job.id, signal);
    }),
  );
}

/** Collects a whole stream by following it from `cursor` to the job's end. */
export async function followAll(
  engine: JobEngine,
  id: string,
  selector: 'stdout' | 'stderr' | 'all',
  cursor = 0,
): Promise<{ data: Buffer; end: import('../../src/core/job.ts').Job; truncated: number }> {
  const chunks: Buffer[] = [];
  let truncated = 0;
  for await (const event of engine.follow(id, { selector, cursor })) {
    if (event.type === 'end') return { data: Buffer.concat(chunks), end: event.job, truncated };
    if (event.type === 'progress') continue;
    for (const e of event.events) {
      if (e.type === 'data') chunks.push(e.data);
      else truncated += e.skippedBytes;
    }
  }
  throw new Error('follow ended without an end event');
}

/** Reads a whole stream page by page from cursor 0. */
export async function readAll(
  engine: JobEngine,
  id: string,
  selector: 'stdout' | 'stderr' | 'all',
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let cursor = 0;
  for (;;) {
    const page = await engine.readOutput(id, { selector, cursor, limitBytes: 100_000 });
    for (const e of page.events) if (e.type === 'data') chunks.push(e.data);
    if (page.cursor === cursor) return Buffer.concat(chunks);
    cursor = page.cursor;
  }
}

/**
 * Submits a job and resolves with it once it has started (or ended without starting): a
 * submission answers as soon as the job is admitted, before the dispatcher starts it.
 */
export async function startRunning(
  engine: JobEngine,
  input: unknown,
  caller: { user: string } = { user: 'tester' },
): Promise<import('../../src/core/job.ts').Job> {
  return engine.untilStarted((await engine.start(input, caller)).id);
}
