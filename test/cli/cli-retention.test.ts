import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { parseKeepFor, parseKeepJobs } from '../../src/config.ts';
import { waitForFileText } from '../helpers/wait.ts';
import { baseEnv, jobworker, startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

const cli = (...args: string[]) => runCliInProcess(args, t.env);
const json = async <T>(...args: string[]): Promise<T> => {
  const result = await cli('--json', ...args);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
};
/** Starts a job and follows it to its end; returns it finished. */
const finished = async (...args: string[]): Promise<ApiJob> => {
  const job = await json<ApiJob>('start', ...args);
  await cli('logs', '-f', job.id);
  return json<ApiJob>('status', job.id);
};

describe('jobworker rm and prune', () => {
  it('rm deletes finished jobs named by id, prefix or name, and refuses a running one', async () => {
    const a = await finished('--name', 'rm-by-name', '--', 'true');
    const b = await finished('--', 'true');
    const c = await finished('--', 'true');
    const running = await json<ApiJob>('start', '--', 'sh', '-c', 'echo ready; exec sleep 60');
    await waitForFileText(join(t.dataDir, 'jobs', running.id, 'stdout'), 'ready');

    const result = await cli('rm', 'rm-by-name', b.id.slice(0, 30), running.id, c.id);
    assert.equal(result.code, 1, 'one of them could not be deleted');
    assert.equal(result.stdout, `deleted ${a.id}\ndeleted ${b.id}\ndeleted ${c.id}\n`, 'the others were');
    assert.match(
      result.stderr,
      new RegExp(
        `^jobworker: ${running.id}: Job ${running.id} is running: only a finished job can be deleted .*\\(NOT_FINISHED\\)\\n$`,
      ),
    );
    for (const job of [a, b, c]) {
      const gone = await cli('status', job.id);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /\(NOT_FOUND\)/);
    }
    assert.equal((await json<ApiJob>('status', running.id)).status, 'running');
    await cli('stop', running.id, '--grace', '0');
    await cli('logs', '-f', running.id);
  });

  it('rm --json still tells what it deleted when the server goes away halfway', async () => {
    const [first, second, third] = [1, 2, 3].map((n) => `01900000-0000-7000-8000-00000000000${n}`);
    // A server that deletes the first job, then drops the connection of the next request.
    const server = createServer((req, res) => {
      if (req.method === 'DELETE' && req.url === `/v1/jobs/${first}`) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: first, status: 'succeeded' }));
        return;
      }
      req.socket.destroy();
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const result = await runCliInProcess(
        ['rm', '--json', first!, second!, third!],
        baseEnv({ JOBWORKER_URL: url, JOBWORKER_TOKEN: 'jw_test' }),
      );
      assert.equal(result.code, 1, result.stderr);
      const doc = JSON.parse(result.stdout) as {
        deleted: { id: string }[];
        failed: { job: string; error: { code: string } }[];
      };
      assert.deepEqual(
        doc.deleted.map((j) => j.id),
        [first],
      );
      assert.deepEqual(
        doc.failed.map((f) => [f.job, f.error.code]),
        [
          [second, 'UNREACHABLE'],
          [third, 'UNREACHABLE'],
        ],
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('prune deletes finished jobs, --before only those finished long enough ago', async () => {
    const job = await finished('--', 'true');
    assert.deepEqual(await json('prune', '--before', '30d'), { deleted: 0 });
    const human = await cli('prune', '--before', '1h');
    assert.equal(human.stdout, 'deleted 0 finished jobs that finished over 1h 00m ago\n');
    const pruned = await cli('prune');
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /^deleted [1-9][0-9]* finished jobs?\n$/);
    assert.equal((await cli('status', job.id)).code, 1);
    const bad = await cli('prune', '--before', 'soon');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Expected a duration like 30d/);
  });
});

describe('naming a job: id prefix, name or last', () => {
  it('status, logs, stop, pause and resume take a prefix, a name or `last`', async () => {
    const job = await json<ApiJob>(
      'start',
      '--name',
      'typed-name',
      '--',
      'sh',
      '-c',
      'echo ready; exec sleep 60',
    );
    await waitForFileText(join(t.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    assert.equal((await json<ApiJob>('status', job.id.slice(0, 30))).id, job.id);
    assert.equal((await json<ApiJob>('status', 'typed-name')).id, job.id);
    assert.equal((await json<ApiJob>('status', 'last')).id, job.id);
    assert.equal((await json<ApiJob>('pause', 'last')).status, 'paused');
    assert.equal((await json<ApiJob>('resume', 'typed-name')).status, 'running');
    const stop = await cli('stop', job.id.slice(0, 30).toUpperCase(), '--grace', '0');
    assert.equal(stop.stdout, `stopping ${job.id} (grace 0ms)\n`);
    const logs = await cli('logs', '-f', 'typed-name');
    assert.equal(logs.stdout, 'ready\n');
    assert.ok(logs.code === 137 || logs.code === 143, `ended by the stop: ${logs.code}`);
  });

  it('an ambiguous prefix or name is an error listing the candidates; start --after takes a name', async () => {
    const first = await finished('--name', 'twice', '--', 'true');
    const second = await finished('--name', 'twice', '--', 'true');
    const ambiguous = await cli('status', 'twice');
    assert.equal(ambiguous.code, 1);
    assert.match(ambiguous.stderr, /^jobworker: Name "twice" matches 2 jobs: /);
    assert.ok(ambiguous.stderr.includes(first.id) && ambiguous.stderr.includes(second.id), ambiguous.stderr);
    assert.match(ambiguous.stderr, /\(AMBIGUOUS\)\n$/);
    // Ids made within hours share their first 6 characters.
    const prefix = await cli('status', first.id.slice(0, 6));
    assert.match(prefix.stderr, /^jobworker: Id prefix "[0-9a-f]{6}" matches (more than )?[0-9]+ jobs: /);
    const unknown = await cli('logs', 'no-such-job');
    assert.match(
      unknown.stderr,
      /^jobworker: No job matches "no-such-job": give its id, at least 6 characters/,
    );

    const dep = await finished('--name', 'dep-by-name', '--', 'true');
    const byName = await json<ApiJob>('start', '--after', 'dep-by-name', '--', 'true');
    assert.deepEqual(byName.after, [dep.id]);
    const byLast = await json<ApiJob>('start', '--after', 'last', '--', 'true');
    assert.deepEqual(byLast.after, [byName.id], '`last` is the newest job: the one just started');
  });

  it('start --after resolves each reference once; the same job twice is a usage error', async () => {
    const dep = await finished('--name', 'dep-twice', '--', 'true');
    const result = await cli('start', '--after', 'dep-twice', '--after', dep.id, '--', 'true');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--after: job \S+ is given twice/);
  });
});

describe('serve retention options', () => {
  it('--keep-jobs takes a count or none, --keep-for a duration, 0 or none', () => {
    assert.equal(parseKeepJobs('100000'), 100_000);
    assert.equal(parseKeepJobs('0'), 0);
    assert.equal(parseKeepJobs('none'), null);
    assert.equal(parseKeepFor('30d'), 30 * 86_400_000);
    assert.equal(parseKeepFor('12h'), 12 * 3_600_000);
    assert.equal(parseKeepFor('90m'), 90 * 60_000);
    assert.equal(parseKeepFor('0'), 0);
    assert.equal(parseKeepFor('none'), null);
    // The same grammar as every other server duration (--default-timeout): plain seconds, decimals.
    assert.equal(parseKeepFor('30'), 30_000);
    assert.equal(parseKeepFor('1.5h'), 1.5 * 3_600_000);
    for (const bad of ['', '-1', 'many', '1.5', '1e3', '2000000000']) {
      assert.throws(() => parseKeepJobs(bad), { field: 'keepJobs' }, bad);
    }
    for (const bad of ['', '2 weeks', '1w', '-1d', '1.5.h']) {
      assert.throws(() => parseKeepFor(bad), { field: 'keepFor' }, bad);
    }
  });

  it('a bad --keep-for is a usage error: one line, exit 2', async () => {
    const env = baseEnv({ JOBWORKER_DATA_DIR: t.dataDir });
    const result = await jobworker(['serve', '--listen', '127.0.0.1:0', '--keep-for', '2 weeks'], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^jobworker: Expected `keepFor` to be a duration such as 30d/);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1);
  });
});
