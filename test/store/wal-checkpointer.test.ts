import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { systemClock } from '../../src/core/clock.ts';
import { WAL_CHECKPOINT_PAGES } from '../../src/store/sqlite/open-sqlite-connection.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import {
  BACKSTOP_CHECKPOINT_PAGES,
  checkpointerPath,
  WalCheckpointer,
  type WalCheckpointerOptions,
} from '../../src/store/sqlite/wal-checkpointer.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { describeJobStoreContract } from './job-store-contract.ts';
import { makeJob } from './make-job.ts';

const run = promisify(execFile);
const helper = checkpointerPath();
const built = { skip: helper === undefined ? 'the checkpoint helper is not built (libsqlite3-dev)' : false };
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
const newDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-checkpointer-'));
  dirs.push(dir);
  return dir;
};

/** A log that remembers what it got, and resolves `said` once a message starts with `awaited`. */
function logUntil(awaited: string) {
  const logged: string[] = [];
  let heard: () => void;
  const said = new Promise<void>((resolve) => {
    heard = resolve;
  });
  const log = (message: string) => {
    logged.push(message);
    if (message.startsWith(awaited)) heard();
  };
  return { logged, said, log };
}

/** A WAL database on a connection of its own, as the store opens one, with a table to fill. */
async function walDatabase() {
  const path = join(await newDir(), 'test.db');
  const connection = new DatabaseSync(path);
  connection.exec(`pragma journal_mode = wal; pragma wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
  connection.exec('create table t (id integer primary key, v text)');
  const insert = connection.prepare('insert into t (v) values (?)');
  /** Writes `rows` rows of a page each in one transaction: about as many WAL frames. */
  const fill = (rows: number) => {
    connection.exec('begin');
    for (let i = 0; i < rows; i++) insert.run('x'.repeat(3000));
    connection.exec('commit');
  };
  const autocheckpoint = () =>
    Number(connection.prepare('pragma wal_autocheckpoint').get()?.wal_autocheckpoint);
  return { path, connection, fill, autocheckpoint };
}

/** The helper started on `db`'s database and connection; `options` as `WalCheckpointer.start` takes them. */
function startOn(
  db: { path: string; connection: DatabaseSync },
  options: Partial<WalCheckpointerOptions> = {},
): Promise<WalCheckpointer> {
  return WalCheckpointer.start({
    path: helper!,
    database: db.path,
    connection: db.connection,
    clock: new ManualClock(),
    log: () => {},
    ...options,
  });
}

describe('WalCheckpointer', () => {
  it(
    'turns the automatic checkpoint into a backstop, asks the helper on the clock only after writes, and the helper copies every frame',
    built,
    async () => {
      const db = await walDatabase();
      const clock = new ManualClock();
      const logged: string[] = [];
      const checkpointer = await startOn(db, { clock, log: (message) => logged.push(message) });
      try {
        assert.equal(checkpointer.running, true);
        assert.equal(
          db.autocheckpoint(),
          BACKSTOP_CHECKPOINT_PAGES,
          "the connection's own checkpoint is only a distant backstop",
        );
        // Nothing written: the tick asks nothing, and schedules no other (the loop may sleep).
        clock.advance(1000);
        assert.equal(checkpointer.requests, 0);
        clock.advance(1000);
        assert.equal(checkpointer.requests, 0);

        // Used again (the store's every statement says so): the ticks start over.
        db.fill(2 * WAL_CHECKPOINT_PAGES);
        checkpointer.activity();
        clock.advance(1000);
        assert.equal(checkpointer.requests, 1, 'asked once the clock came round after the writes');
        // A request made while one is under way shares it.
        const result = await checkpointer.checkpoint();
        assert.equal(checkpointer.requests, 1);
        assert.ok(result, 'the helper answered');
        // More frames than the automatic checkpoint allowed: the connection never copied them itself.
        assert.ok(result.log > WAL_CHECKPOINT_PAGES, `WAL frames: ${result.log}`);
        assert.equal(result.checkpointed, result.log, 'every frame is in the database');
        assert.deepEqual(logged, []);
      } finally {
        await checkpointer.close();
        db.connection.close();
      }
    },
  );

  it(
    'under steady writes the WAL starts over: the connection catches up after an answer that finds it long',
    built,
    async () => {
      const db = await walDatabase();
      const logged: string[] = [];
      const restartAtFrames = 200;
      const checkpointer = await startOn(db, {
        clock: systemClock,
        log: (message) => logged.push(message),
        intervalMs: 20,
        restartAtFrames,
      });
      try {
        // Writes without a pause but for a turn of the event loop (where the ticks come), until 30
        // times the restart threshold went through the WAL: the helper is always a few commits
        // behind, and only a restart keeps the file short. No restart: a WAL of every frame.
        const rows = 30 * restartAtFrames;
        for (let written = 0; written < rows; written += 20) {
          db.fill(20);
          checkpointer.activity();
          await new Promise((resolve) => setImmediate(resolve));
        }
        const walFrames = statSync(`${db.path}-wal`).size / 4120;
        assert.ok(checkpointer.catchUps > 0, 'the connection caught up at least once');
        assert.ok(
          walFrames < rows / 2,
          `the WAL held ${Math.round(walFrames)} frames at most, of ${rows} written`,
        );
        assert.deepEqual(logged, []);
      } finally {
        await checkpointer.close();
        db.connection.close();
      }
    },
  );

  it(
    'closed after the connection, the helper is the last one: it copies the WAL in and removes it',
    built,
    async () => {
      const db = await walDatabase();
      const checkpointer = await startOn(db);
      db.fill(100);
      // `start` resolves once the helper runs, which may be before it opened the database: its
      // first answer comes after it did (it reads the WAL before it reads a request).
      assert.ok(await checkpointer.checkpoint(), 'the helper answered');
      db.fill(100);
      db.connection.close();
      assert.equal(existsSync(`${db.path}-wal`), true, 'the helper still holds the database: its WAL stays');
      await checkpointer.close();
      assert.equal(existsSync(`${db.path}-wal`), false);
      const reopened = new DatabaseSync(db.path);
      assert.equal(Number(reopened.prepare('select count(*) as n from t').get()?.n), 200);
      reopened.close();
    },
  );

  it(
    'a database replaced while it ran is left alone at its close: the new files keep their WAL',
    built,
    async () => {
      const db = await walDatabase();
      const checkpointer = await startOn(db);
      // The helper has opened the first database once it answers (see above).
      assert.ok(await checkpointer.checkpoint(), 'the helper answered');
      db.connection.close();
      // As an operator's `rm jobworker.db*` and a new server would: another database by that name.
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${db.path}${suffix}`, { force: true });
      const fresh = new DatabaseSync(db.path);
      fresh.exec('pragma journal_mode = wal; pragma wal_autocheckpoint = 0; create table u (x)');
      fresh.exec("insert into u values ('kept')");
      await checkpointer.close();
      assert.equal(existsSync(`${db.path}-wal`), true, "the new database's WAL is still there");
      assert.equal(fresh.prepare('select x from u').get()?.x, 'kept');
      fresh.close();
    },
  );

  it(
    'a helper that dies gives the connection its automatic checkpoint back, and says so',
    built,
    async () => {
      const db = await walDatabase();
      const { logged, said, log } = logUntil('the checkpoint helper ended');
      const checkpointer = await startOn(db, { log });
      try {
        const pid = checkpointer.pid;
        assert.ok(pid);
        process.kill(pid, 'SIGKILL');
        await said;
        assert.equal(checkpointer.running, false);
        assert.equal(db.autocheckpoint(), WAL_CHECKPOINT_PAGES);
        assert.deepEqual(logged, [
          "the checkpoint helper ended (SIGKILL); SQLite checkpoints run on the server's event loop again",
        ]);
        assert.equal(await checkpointer.checkpoint(), undefined, 'no helper to ask');
      } finally {
        await checkpointer.close();
        db.connection.close();
      }
    },
  );

  it('a helper that cannot start leaves the automatic checkpoint as it was', async () => {
    const db = await walDatabase();
    const logged: string[] = [];
    const checkpointer = await startOn(db, {
      path: join(await newDir(), 'no-such-helper'),
      log: (message) => logged.push(message),
    });
    try {
      assert.equal(checkpointer.running, false);
      assert.equal(db.autocheckpoint(), WAL_CHECKPOINT_PAGES);
      assert.equal(logged.length, 1);
      assert.match(
        logged[0]!,
        /^could not start the checkpoint helper: spawn .* ENOENT; SQLite checkpoints run/,
      );
    } finally {
      await checkpointer.close();
      db.connection.close();
    }
  });

  it(
    'a helper given a database that is not in WAL mode says why and ends; the connection keeps its checkpoint',
    built,
    async () => {
      const path = join(await newDir(), 'rollback.db');
      const connection = new DatabaseSync(path);
      connection.exec('create table t (id integer primary key)');
      const { logged, said, log } = logUntil('the checkpoint helper ended');
      const checkpointer = await startOn({ path, connection }, { log });
      await said;
      await checkpointer.close();
      assert.deepEqual(logged, [
        `jobworker-checkpointer: ${path} is not in WAL mode (delete)`,
        "the checkpoint helper ended (code 1); SQLite checkpoints run on the server's event loop again",
      ]);
      assert.equal(
        Number(connection.prepare('pragma wal_autocheckpoint').get()?.wal_autocheckpoint),
        WAL_CHECKPOINT_PAGES,
      );
      connection.close();
    },
  );
});

describe('a helper whose checkpoints fail', () => {
  it('is asked again later each time it fails in a row, up to FAILING_INTERVAL_MAX_MS, and at the pace of the clock once one passes', async () => {
    const db = await walDatabase();
    // A helper that speaks the protocol and fails its first checkpoints (a disk error, say),
    // then succeeds: the failures come from a real process, in its real answers.
    const fake = join(await newDir(), 'failing-checkpointer');
    writeFileSync(
      fake,
      '#!/bin/sh\nn=0\nwhile read request; do\n  n=$((n + 1))\n  if [ $n -le 6 ]; then echo "err 10 disk I/O error"; else echo "ok 0 0"; fi\ndone\n',
      { mode: 0o755 },
    );
    const clock = new ManualClock();
    const logged: string[] = [];
    const checkpointer = await startOn(
      { path: fake, connection: db.connection },
      {
        path: fake,
        clock,
        log: (message) => logged.push(message),
      },
    );
    try {
      db.fill(10);
      checkpointer.activity();
      // Each wait before the next request, after 0, 1, ... 6 failures in a row: doubled each
      // time, capped; then, once a checkpoint passed and nothing changed, no request at all.
      const waits = [250, 500, 1000, 2000, 4000, 5000, 5000];
      for (const [i, wait] of waits.entries()) {
        clock.advance(wait - 1);
        assert.equal(checkpointer.requests, i, `not before ${wait} ms`);
        clock.advance(1);
        assert.equal(checkpointer.requests, i + 1, `asked after ${wait} ms`);
        // The request under way (shared, not a new one): its answer schedules the next tick.
        await checkpointer.checkpoint();
      }
      assert.equal(checkpointer.requests, waits.length);
      assert.deepEqual(logged, [
        'a WAL checkpoint failed (tried again at the next one): err 10 disk I/O error',
      ]);
      // The seventh passed: the changes are done with, and the next tick asks nothing.
      clock.advance(250);
      assert.equal(checkpointer.requests, waits.length);
      // A write (the store's statements say so): asked again after the plain interval, not a
      // backed-off one.
      db.fill(1);
      checkpointer.activity();
      clock.advance(249);
      assert.equal(checkpointer.requests, waits.length);
      clock.advance(1);
      assert.equal(checkpointer.requests, waits.length + 1);
      await checkpointer.checkpoint();
    } finally {
      await checkpointer.close();
      db.connection.close();
    }
  });
});

describe('SqliteJobStore with the checkpoint helper', () => {
  it(
    'runs the helper, takes the quiet-time checkpoint through it, and closes it with the store',
    built,
    async () => {
      const path = join(await newDir(), 'jobworker.db');
      const clock = new ManualClock();
      const store = await SqliteJobStore.open(path, { checkpoints: { clock, log: () => {} } });
      const pid = store.checkpointer?.pid;
      try {
        assert.ok(pid, 'the helper runs');
        // The first tick finds nothing new and stops the ticks; the store's statements start them.
        clock.advance(1000);
        for (let i = 0; i < 50; i++) await store.insertJob(makeJob());
        clock.advance(1000);
        assert.equal(store.checkpointer?.requests, 1, "the store's writes started the ticks again");
        assert.ok(await store.checkpointer?.checkpoint());
        await store.releaseMemory();
        assert.equal(store.checkpointer?.requests, 2, 'the quiet-time checkpoint went to the helper');
      } finally {
        await store.close();
      }
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the helper ended with the store');
      assert.equal(existsSync(`${path}-wal`), false);
      const reopened = await SqliteJobStore.open(path);
      try {
        assert.equal((await reopened.listJobs({ limit: 100 })).jobs.length, 50);
      } finally {
        await reopened.close();
      }
    },
  );
});

describe('closing with a checkpoint under way', () => {
  it('the close waits for the helper to go even when its last answer comes meanwhile', built, async () => {
    const fixture = new URL('../fixtures/store-closed-mid-checkpoint.ts', import.meta.url).pathname;
    for (let round = 0; round < 3; round++) {
      const { stdout, stderr } = await run(process.execPath, [fixture, join(await newDir(), 'jobworker.db')]);
      assert.match(stdout, /^closed; the checkpoint asked before: /, stderr);
    }
  });
});

// The whole store contract with the helper checkpointing beside it on the real clock.
describeJobStoreContract('SqliteJobStore, checkpoints by the helper', async () => {
  const dir = await newDir();
  const logged: string[] = [];
  const store = await SqliteJobStore.open(join(dir, 'jobs.db'), {
    checkpoints: { clock: systemClock, log: (message) => logged.push(message) },
  });
  return {
    store,
    async cleanup() {
      await store.close();
      assert.deepEqual(logged, [], 'nothing went wrong with the helper');
    },
  };
});
