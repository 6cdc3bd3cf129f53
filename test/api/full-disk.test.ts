import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type RunningServer, runServer } from '../../src/main.ts';
import { baseEnv, LAUNCHER } from '../cli/cli-harness.ts';
import { makeFifo, mountSmallDisk, type SmallDisk, whenWrapperTriesToRecord } from '../helpers/small-disk.ts';
import { trustServerCa } from '../helpers/trust-server.ts';
import { killProcessGroup, pidAlive, waitForFileText } from '../helpers/wait.ts';
import { type JobJson, readSse, testServerOptions, untilJobSaid, within } from './api-harness.ts';

/**
 * Defect 15 (issue 8): a full disk hung the server or made it lie. Each case runs on a small
 * tmpfs of its own, filled with a filler file, then freed, and is checked from the outside.
 */

/** Test-side files (fifos, markers) live off the small disk, so that filling it leaves them be. */
let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'jw-full-disk-'));
});
after(() => rm(scratch, { recursive: true, force: true }));

describe('defect 15: with the log on a full disk', () => {
  let disk: SmallDisk;
  before(async () => {
    disk = await mountSmallDisk('2m');
  });
  after(() => disk.destroy());

  it('defect 15: the server answers, counts the lines it dropped once space returns, and SIGTERM still ends it', async () => {
    // As `jobworker serve > server.log 2>&1`: the log and serve's own lines both on the small disk.
    const logPath = join(disk.dir, 'server.log');
    const log = await open(logPath, 'a');
    const dataDir = join(scratch, 'log-data');
    // At debug, where every request writes a line (at info, requests are not logged).
    const serve = spawn(
      LAUNCHER,
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'debug'],
      {
        env: baseEnv(),
        stdio: ['ignore', log.fd, log.fd],
      },
    );
    await log.close();
    const exited = once(serve, 'exit');
    try {
      const started = await waitForFileText(logPath, '"msg":"jobworker listening"', 60_000);
      const url = (
        JSON.parse(started.split('\n').find((l) => l.includes('jobworker listening'))!) as { url: string }
      ).url;
      trustServerCa(join(dataDir, 'tls', 'ca.pem'));
      const health = async () => (await fetch(`${url}/healthz`)).status;

      await disk.fill();
      // Each request logs a line, none of which fits: pino's own destination went into a loop
      // retrying its write every 100 ms with the event loop stopped, and the server stopped answering.
      for (let i = 0; i < 40; i++) assert.equal(await within(health(), 20_000, `/healthz #${i}`), 200);

      await disk.free();
      assert.equal(await health(), 200);
      const text = await waitForFileText(logPath, 'log lines could not be written');
      // serve's own lines (`jobworker: listening on ...`) are in the same file; the log lines are JSON.
      const lines = text.split('\n').filter((line) => line !== '' && !line.startsWith('jobworker: '));
      const parses = (line: string) => {
        try {
          JSON.parse(line);
          return true;
        } catch {
          return false;
        }
      };
      // A line the full disk cut short is ended before anything else: it alone does not parse.
      assert.ok(lines.filter((line) => !parses(line)).length <= 1, text);
      const at = lines.findIndex((line) => line.includes('log lines could not be written'));
      assert.ok(lines.slice(at).every(parses), 'every line from the report on is whole');
      const notice = JSON.parse(lines[at]!) as { droppedLogLines: number; cause: string };
      assert.ok(notice.droppedLogLines > 0, `dropped ${notice.droppedLogLines} lines`);
      assert.match(String(notice.cause), /ENOSPC/);

      // Full again: SIGTERM still closes the server, and it exits cleanly.
      await disk.fill();
      assert.equal(await health(), 200);
      serve.kill('SIGTERM');
      const [code] = await within(exited, 30_000, 'serve to exit after SIGTERM on a full disk');
      assert.equal(code, 0, await readFile(logPath, 'utf8'));
    } finally {
      if (serve.exitCode === null && serve.signalCode === null) serve.kill('SIGKILL');
      await disk.free();
    }
  });
});

describe('defect 15: with the data directory on a full disk', () => {
  let disk: SmallDisk;
  let server: RunningServer;
  let token: string;
  let dataDir: string;
  const logs: string[] = [];
  const logStream = new PassThrough();
  before(async () => {
    disk = await mountSmallDisk('4m');
    dataDir = join(disk.dir, 'data');
    logStream.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
    server = await runServer({ listen: '127.0.0.1:0', dataDir, logStream, ...(await testServerOptions()) });
    trustServerCa(server.caFile);
    token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  });
  /** Job process groups, ended in `after` should a test fail half way. */
  const jobPids: number[] = [];
  after(async () => {
    try {
      await disk.free();
      await server.close();
      // Only the groups still there: a group of a job that ended may be another's by now.
      for (const pid of jobPids) if (await pidAlive(pid)) killProcessGroup(pid);
    } finally {
      await disk.destroy();
    }
  });

  const api = (path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(server.url + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const submit = async (spec: unknown) => {
    const res = await api('/v1/jobs', spec);
    return { status: res.status, body: (await res.json()) as JobJson & { error?: Record<string, string> } };
  };
  /** The job as the end of its output stream reports it: resolves once its end is recorded. */
  const ended = async (id: string): Promise<JobJson> => {
    const res = await api(`/v1/jobs/${id}/output?follow=true`, undefined, { accept: 'text/event-stream' });
    const end = (await readSse(res)).at(-1);
    assert.equal(end?.event, 'end');
    return (JSON.parse(end.data) as { job: JobJson }).job;
  };
  /** Resolves with the job once it said `ready`, its start (and pid) on record. */
  const ready = (id: string): Promise<JobJson> => untilJobSaid(server.url, token, id, 'ready\n');
  it('defect 15: a submit on a full disk answers 507 INSUFFICIENT_STORAGE with the real cause and creates nothing', async () => {
    const before = (await readdir(join(dataDir, 'jobs'))).length;
    // A commit on a full disk succeeds when it fits in the WAL file's own space: after the
    // checkpoints started the WAL over, the file is longer than what it holds. So the WAL is
    // first written to its end and past it (a blob as long as the file, in a table made and
    // dropped), and a reader then holds a snapshot that takes in those frames (as a backup
    // would), so that the WAL cannot start over: the next commit must grow the file. The
    // reader's own autocheckpoint is off: its commit must not copy the WAL in (SQLite's default
    // past 1,000 frames), after which its snapshot would hold nothing.
    const reader = new DatabaseSync(join(dataDir, 'jobworker.db'));
    reader.exec('pragma wal_autocheckpoint = 0');
    const walBytes = statSync(join(dataDir, 'jobworker.db-wal')).size;
    reader.exec(
      `begin immediate; create table test_pin (x blob); insert into test_pin values (zeroblob(${walBytes + 65536})); drop table test_pin; commit`,
    );
    reader.exec('begin');
    reader.prepare('select count(*) from jobs').get();
    await disk.fill();
    try {
      const refused = await submit({ command: 'true', name: 'on-a-full-disk' });
      assert.equal(refused.status, 507, JSON.stringify(refused.body));
      assert.equal(refused.body.error?.code, 'INSUFFICIENT_STORAGE');
      assert.match(refused.body.error?.message ?? '', /jobworker\.db: database or disk is full/);
      // Reads still work, and show that nothing was created.
      const listed = (await (await api('/v1/jobs?name=on-a-full-disk')).json()) as { jobs: JobJson[] };
      assert.deepEqual(listed.jobs, []);
      assert.equal((await readdir(join(dataDir, 'jobs'))).length, before, 'no job directory left behind');
      assert.ok(
        !logs.some((line) => line.includes('cannot rollback')),
        'the cause is not hidden behind a failed ROLLBACK',
      );
    } finally {
      reader.exec('commit');
      reader.close();
      await disk.free();
    }
    const accepted = await submit({ command: 'true', name: 'on-a-full-disk' });
    assert.equal(accepted.status, 201);
    assert.equal((await ended(accepted.body.id)).status, 'succeeded');
  });

  it('defect 15: on a full disk running jobs keep running, stop stops them, and every end is recorded once space returns', async () => {
    const fifo = join(scratch, 'release');
    await makeFifo(fifo);
    await makeFifo(`${fifo}.2`);
    const termMark = join(scratch, 'stopped-got-term');
    const stopped = await submit({
      command: 'sh',
      args: ['-c', `trap 'echo term > ${termMark}; exit 143' TERM; echo ready; while :; do sleep 1; done`],
    });
    const ending = await submit({ command: 'sh', args: ['-c', `echo ready; read line < ${fifo}; exit 3`] });
    const running = await submit({ command: 'sh', args: ['-c', `echo ready; read line < ${fifo}.2`] });
    const pids: number[] = [];
    for (const job of [stopped, ending, running]) {
      assert.equal(job.status, 201);
      pids.push((await ready(job.body.id)).pid!);
      jobPids.push(pids.at(-1)!);
    }

    await disk.fill();
    let freedAt: Date;
    let endedBy: Date;
    let stopping: JobJson;
    try {
      // A stop whose request cannot be written is carried out all the same.
      const stop = await api(`/v1/jobs/${stopped.body.id}/stop`, { graceMs: 5000 });
      assert.equal(stop.status, 202);
      stopping = (await stop.json()) as JobJson;
      assert.equal(stopping.status, 'running');
      assert.ok(stopping.stopRequestedAt, 'the answer shows the stop as asked');
      await waitForFileText(termMark, 'term');
      // Its processes are gone (its wrapper tries to record their end only after that) and its end
      // waits for space.
      await whenWrapperTriesToRecord(join(dataDir, 'jobs', stopped.body.id));
      assert.equal(await pidAlive(pids[0]!), false);

      // A job that ends by itself while nothing can be written: its wrapper cannot write the exit
      // record, and waits for space rather than giving up (which read as a killed wrapper).
      const tried = whenWrapperTriesToRecord(join(dataDir, 'jobs', ending.body.id));
      await writeFile(fifo, 'go\n');
      await tried;
      endedBy = new Date();
      assert.equal(await pidAlive(pids[1]!), false);
      // Recorded as it is known: still running, its end not yet on record.
      const meanwhile = (await (await api(`/v1/jobs/${ending.body.id}`)).json()) as JobJson;
      assert.equal(meanwhile.status, 'running');

      // The job that keeps running is running, as is its record.
      assert.ok(await pidAlive(pids[2]!));
      const status = (await (await api(`/v1/jobs/${running.body.id}`)).json()) as JobJson;
      assert.equal(status.status, 'running');
    } finally {
      freedAt = new Date();
      await disk.free();
    }

    const stoppedEnd = await ended(stopped.body.id);
    assert.equal(stoppedEnd.status, 'stopped');
    assert.equal(stoppedEnd.stopRequestedAt, stopping.stopRequestedAt, 'the stop is on record with the end');
    assert.match(stoppedEnd.reason ?? '', /^stopped by /);

    // Its true outcome, not "the job's supervisor process was killed", at the time it ended.
    const endingEnd = await ended(ending.body.id);
    assert.equal(endingEnd.status, 'failed');
    assert.equal(endingEnd.exitCode, 3);
    assert.equal(endingEnd.reason, 'exited with code 3');
    assert.ok(
      new Date(endingEnd.finishedAt!) <= endedBy!,
      `recorded with the time it ended (${endingEnd.finishedAt}), not when space returned (${freedAt.toISOString()})`,
    );

    // The job that ran through it all ends normally, and new work is taken.
    await writeFile(`${fifo}.2`, 'go\n');
    assert.equal((await ended(running.body.id)).status, 'succeeded');
    const after = await submit({ command: 'true' });
    assert.equal(after.status, 201);
    assert.equal((await ended(after.body.id)).status, 'succeeded');
  });
});
