import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiJob, JobPage } from '../../src/client/api-types.ts';
import {
  baseEnv,
  CliProcess,
  jobworker,
  jobworkerJson,
  startTestServer,
  type TestServer,
} from './cli-harness.ts';

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const oneLine = (text: string) => text.endsWith('\n') && !text.slice(0, -1).includes('\n');

let t: TestServer;
let scratch: string;
before(async () => {
  t = await startTestServer();
  scratch = await mkdtemp(join(tmpdir(), 'jw-cli-scratch-'));
});
after(async () => {
  await t.close();
  await rm(scratch, { recursive: true, force: true });
});

/** Runs `logs -f` to the job's end: by then the job has finished. */
const waitForEnd = (id: string) => jobworker(['logs', '-f', id], t.env);

describe('jobworker start', () => {
  it('prints the new job id, and the job with --json', async () => {
    const started = await jobworker(['start', '--', 'echo', 'hi'], t.env);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout.trim(), ID);
    assert.ok(oneLine(started.stdout));

    const job = await jobworkerJson<ApiJob>(
      ['start', '--name', 'greet', '--', 'echo', 'a  b', '$HOME'],
      t.env,
    );
    assert.match(job.id, ID);
    assert.equal(job.name, 'greet');
    assert.equal(job.command, 'echo');
    assert.deepEqual(job.args, ['a  b', '$HOME']);
    assert.equal(job.shell, false);
    const ended = await waitForEnd(job.id);
    assert.equal(ended.stdout, 'a  b $HOME\n', 'arguments reach the command as they are, with no shell');
  });

  it('start -f prints the output and exits with the job exit code', async () => {
    const result = await jobworker(
      ['start', '-f', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'],
      t.env,
    );
    assert.equal(result.code, 3);
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.stderr, 'err\n');

    const ok = await jobworker(['start', '--follow', '--', 'printf', 'x\\0y'], t.env);
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, 'x\0y', 'bytes pass through exactly when stdout is not a terminal');
  });

  it('start -f exits 128 + the signal number when a signal killed the job', async () => {
    const result = await jobworker(['start', '-f', '--', 'sh', '-c', 'kill -KILL $$'], t.env);
    assert.equal(result.code, 137, result.stderr);
  });

  it('start "echo a b" (one string with whitespace) runs it with /bin/sh -c', async () => {
    const result = await jobworker(['start', '-f', 'echo a b | tr a-z A-Z; exit 4'], t.env);
    assert.equal(result.code, 4);
    assert.equal(result.stdout, 'A B\n');
    const job = await jobworkerJson<ApiJob>(['start', 'echo a b'], t.env);
    assert.equal(job.shell, true);
    assert.equal(job.command, 'echo a b');
  });

  it('passes --env, --cwd, --label and --timeout', async () => {
    const result = await jobworker(
      [
        'start',
        '-f',
        '--env',
        'GREETING=hello',
        '--cwd',
        scratch,
        '--label',
        'team=cli',
        '--',
        'sh',
        '-c',
        'echo "$GREETING $PWD"',
      ],
      t.env,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `hello ${scratch}\n`);

    const timed = await jobworker(['start', '-f', '--timeout', '200ms', '--', 'sleep', '60'], t.env);
    assert.notEqual(timed.code, 0);
    const page = await jobworkerJson<JobPage>(['list', '--status', 'timed_out'], t.env);
    assert.ok(page.jobs.some((job) => job.command === 'sleep'));
  });

  it('with --json -f prints one document: the final job and the output', async () => {
    const result = await jobworker(
      ['start', '-f', '--json', '--', 'sh', '-c', 'printf out; printf err >&2; exit 2'],
      t.env,
    );
    assert.equal(result.code, 2);
    const doc = JSON.parse(result.stdout) as {
      job: ApiJob;
      output: { stream: string; data: string }[];
    };
    assert.equal(doc.job.status, 'failed');
    assert.equal(doc.job.exitCode, 2);
    const text = (stream: string) =>
      doc.output
        .filter((chunk) => chunk.stream === stream)
        .map((chunk) => Buffer.from(chunk.data, 'base64').toString())
        .join('');
    assert.equal(text('stdout'), 'out');
    assert.equal(text('stderr'), 'err');
  });
});

describe('jobworker logs', () => {
  it('prints a finished job output, each stream on its own with --stdout / --stderr', async () => {
    const job = await jobworkerJson<ApiJob>(
      ['start', '--', 'sh', '-c', 'echo one; echo two >&2; echo three'],
      t.env,
    );
    await waitForEnd(job.id);
    const all = await jobworker(['logs', job.id], t.env);
    assert.equal(all.code, 0);
    assert.equal(all.stdout, 'one\nthree\n');
    assert.equal(all.stderr, 'two\n');
    const err = await jobworker(['logs', '--stderr', job.id], t.env);
    assert.deepEqual([err.code, err.stdout, err.stderr], [0, 'two\n', '']);
    const out = await jobworker(['logs', job.id, '--stdout'], t.env);
    assert.deepEqual([out.code, out.stdout, out.stderr], [0, 'one\nthree\n', '']);
  });

  it('logs -f follows a running job live and exits with its exit code', async () => {
    const go = join(scratch, 'go');
    const script = `echo ready; while [ ! -e '${go}' ]; do sleep 0.02; done; echo done; exit 5`;
    const job = await jobworkerJson<ApiJob>(['start', '--', 'sh', '-c', script], t.env);
    const follower = new CliProcess(['logs', '-f', job.id], t.env);
    await follower.waitForStdout('ready\n');
    await writeFile(go, '');
    const result = await follower.result();
    assert.equal(result.code, 5, result.stderr);
    assert.equal(result.stdout, 'ready\ndone\n');
  });

  it('a follower resumes after the server restarts, with no gap and no duplicate', async () => {
    const go = join(scratch, 'go-restart');
    const script = `i=0; while [ ! -e '${go}' ]; do i=$((i+1)); echo $i; sleep 0.01; done; echo last`;
    const job = await jobworkerJson<ApiJob>(['start', '--', 'sh', '-c', script], t.env);
    const follower = new CliProcess(['logs', '-f', job.id], t.env);
    await follower.waitForStdout('\n20\n');
    await t.restart();
    const linesBefore = follower.stdout.split('\n').length;
    await follower.waitUntil((stdout) => stdout.split('\n').length > linesBefore + 20, '20 more lines');
    await writeFile(go, '');
    const result = await follower.result();
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.at(-1), 'last');
    const numbers = lines.slice(0, -1).map(Number);
    assert.deepEqual(
      numbers,
      numbers.map((_, i) => i + 1),
      'every line once, in order',
    );
  });
});

describe('jobworker stop, status and list', () => {
  it('stop ends a running job; a second stop says it had already finished', async () => {
    const job = await jobworkerJson<ApiJob>(
      ['start', '--name', 'sleeper', '--', 'sh', '-c', 'echo up; exec sleep 600'],
      t.env,
    );
    const follower = new CliProcess(['logs', '-f', job.id], t.env);
    await follower.waitForStdout('up\n');
    const stopped = await jobworker(['stop', job.id, '--grace', '5s'], t.env);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(stopped.stdout.includes(job.id));
    const followed = await follower.result();
    assert.equal(followed.code, 143, 'the follower exits 128 + SIGTERM');

    const status = await jobworkerJson<ApiJob>(['status', job.id], t.env);
    assert.equal(status.status, 'stopped');
    assert.notEqual(status.stopRequestedAt, null);

    const again = await jobworker(['stop', job.id], t.env);
    assert.equal(again.code, 1);
    assert.ok(oneLine(again.stderr), again.stderr);
    assert.match(again.stderr, /^jobworker: .*finished/);
  });

  it('status prints the job for humans, and the job with --json', async () => {
    const job = await jobworkerJson<ApiJob>(['start', '--name', 'stat', '--', 'sh', '-c', 'exit 7'], t.env);
    await waitForEnd(job.id);
    const human = await jobworker(['status', job.id], t.env);
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`^ID +${job.id}$`, 'm'));
    assert.match(human.stdout, /^Status +failed$/m);
    assert.match(human.stdout, /^Name +stat$/m);
    assert.match(human.stdout, /^Command +sh -c 'exit 7'$/m);
    assert.match(human.stdout, /^Exit code +7$/m);
    assert.match(human.stdout, /^Duration +\d/m);
    assert.ok(!human.stdout.includes('\x1b'), 'no colour when stdout is not a terminal');
    const json = await jobworkerJson<ApiJob>(['status', job.id], t.env);
    assert.equal(json.id, job.id);
    assert.equal(json.exitCode, 7);
  });

  it('list prints a table, and {jobs, nextCursor} with --json', async () => {
    const job = await jobworkerJson<ApiJob>(['start', '--name', 'listed', '--', 'true'], t.env);
    await waitForEnd(job.id);
    const table = await jobworker(['list'], t.env);
    assert.equal(table.code, 0, table.stderr);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    assert.match(header!, /^ID +NAME +STATUS +AGE +DURATION +QUEUE +COMMAND$/);
    assert.match(
      rows[0]!,
      new RegExp(`^${job.id} +listed +succeeded +\\S.* +default +true$`),
      'newest first',
    );

    const page = await jobworkerJson<JobPage>(['list', '--limit', '1'], t.env);
    assert.equal(page.jobs.length, 1);
    assert.equal(page.jobs[0]!.id, job.id);
    assert.equal(typeof page.nextCursor, 'string');
    const next = await jobworkerJson<JobPage>(['list', '--limit', '1', '--cursor', page.nextCursor!], t.env);
    assert.notEqual(next.jobs[0]!.id, job.id);

    const ended = await jobworkerJson<JobPage>(['list', '--status', 'failed,stopped'], t.env);
    assert.ok(ended.jobs.length > 0);
    assert.ok(ended.jobs.every((j) => j.status === 'failed' || j.status === 'stopped'));

    const labelled = await jobworkerJson<ApiJob>(
      ['start', '--label', 'team=list', '--name', 'l', 'true'],
      t.env,
    );
    const byLabel = await jobworkerJson<JobPage>(['list', '--label', 'team=list'], t.env);
    assert.deepEqual(
      byLabel.jobs.map((j) => j.id),
      [labelled.id],
    );
    const byName = await jobworkerJson<JobPage>(['list', '--name', 'listed'], t.env);
    assert.deepEqual(
      byName.jobs.map((j) => j.id),
      [job.id],
    );
    await waitForEnd(labelled.id);
  });
});

describe('errors', () => {
  it('a usage error exits 2 with one line', async () => {
    const cases = [
      ['start'],
      ['stop', 'x', '--grace', 'soon'],
      ['start', '--timeout', '0', '--', 'true'],
      ['list', '--limit', '0'],
      ['list', '--limit', '5000'],
      ['list', '--label', 'no-equals-sign'],
      ['list', '--status', 'sleeping'],
      ['logs', 'x', '--stdout', '--stderr'],
      ['frobnicate'],
      ['--server', 'not a url', 'list'],
      ['start', '--env', 'JW_SURELY_UNSET_VARIABLE', '--', 'true'],
    ];
    for (const args of cases) {
      const result = await jobworker(args, t.env);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.ok(oneLine(result.stderr), `${args.join(' ')}: ${JSON.stringify(result.stderr)}`);
      assert.match(result.stderr, /^jobworker: /);
      assert.equal(result.stdout, '');
    }
    const grace = await jobworker(['stop', 'x', '--grace', 'soon'], t.env);
    assert.match(grace.stderr, /--grace/, 'a bad duration names the option');
  });

  it('an unknown id exits 1 with one line naming the error code', async () => {
    for (const command of ['status', 'logs', 'stop']) {
      const result = await jobworker([command, '01900000-0000-7000-8000-000000000000'], t.env);
      assert.equal(result.code, 1, result.stderr);
      assert.ok(oneLine(result.stderr), result.stderr);
      assert.match(result.stderr, /^jobworker: .*NOT_FOUND/);
    }
  });

  it('with --json, an error is one JSON document on stderr in the API error shape', async () => {
    const missing = await jobworker(['status', '01900000-0000-7000-8000-000000000000', '--json'], t.env);
    assert.equal(missing.code, 1);
    const body = JSON.parse(missing.stderr) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'NOT_FOUND');
    assert.match(body.error.message, /No job with id/);
    const bad = await jobworker(['start', '--json', '--timeout', 'soon', '--', 'true'], t.env);
    assert.equal(bad.code, 2);
    assert.equal((JSON.parse(bad.stderr) as { error: { code: string } }).error.code, 'USAGE');
    const invalid = await jobworker(['start', '--json', '--priority', '5000', '--', 'true'], t.env);
    const error = (JSON.parse(invalid.stderr) as { error: { code: string; field?: string } }).error;
    assert.ok(
      (error.code === 'VALIDATION_FAILED' && error.field === 'priority') || error.code === 'USAGE',
      invalid.stderr,
    );
  });

  it('a server that is not there, or a wrong token, is one line and exit 1', async () => {
    const refused = await jobworker(
      ['list'],
      baseEnv({ JOBWORKER_URL: 'http://127.0.0.1:9', JOBWORKER_TOKEN: 'x' }),
    );
    assert.equal(refused.code, 1);
    assert.ok(oneLine(refused.stderr));
    assert.match(refused.stderr, /connection refused/);
    const denied = await jobworker(['list'], { ...t.env, JOBWORKER_TOKEN: 'wrong' });
    assert.equal(denied.code, 1);
    assert.ok(oneLine(denied.stderr));
    assert.match(denied.stderr, /UNAUTHENTICATED/);
  });
});

describe('token discovery', () => {
  it('without JOBWORKER_TOKEN or a URL, the local server is reached over its socket with the admin token file', async () => {
    const env = baseEnv({ JOBWORKER_DATA_DIR: t.dataDir });
    const result = await jobworker(['start', '-f', '--', 'echo', 'found'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'found\n');
    // With a URL, the admin token is not sent, even to the very server that wrote it.
    const without = await jobworker(
      ['list'],
      baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_DATA_DIR: t.dataDir }),
    );
    assert.equal(without.code, 1);
    assert.match(without.stderr, /no token: set JOBWORKER_TOKEN .*leave out --server and JOBWORKER_URL/);
  });
});
