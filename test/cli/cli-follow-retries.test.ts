import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

// A job with --retry is a chain of attempts, each a job of its own (docs/queues.md, "Retries"):
// a follow goes on to the next attempt and exits as the chain ended, and the chain's name names
// its newest attempt.

let t: TestServer;
let scratch: string;
before(async () => {
  t = await startTestServer();
  scratch = await mkdtemp(join(tmpdir(), 'jw-cli-retries-'));
});
after(async () => {
  await t.close();
  await rm(scratch, { recursive: true, force: true });
});

let counters = 0;
/** A job script that prints its attempt's number and fails (exit 3) until attempt `succeedsAt`. */
function flaky(succeedsAt: number): string[] {
  const counter = join(scratch, `attempts-${++counters}`);
  const script = `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${counter}'; echo "attempt $n"; [ $n -ge ${succeedsAt} ] || exit 3`;
  return ['sh', '-c', script];
}

interface OutputJson {
  job: ApiJob;
  output: { stream: string; data: string }[];
  earlierAttempts?: { job: ApiJob; output: { stream: string; data: string }[] }[];
}
const text = (output: OutputJson['output']) =>
  output.map(({ data }) => Buffer.from(data, 'base64').toString()).join('');

describe('following a job with retries', () => {
  it('start -f follows each attempt and exits with the status of the one that ends the chain', async () => {
    const result = await runCliInProcess(
      ['start', '-f', '--name', 'two-tries', '--retry', '2', '--retry-backoff', '10ms,1', '--', ...flaky(2)],
      { ...t.env, NO_COLOR: '1' },
      { stderrIsTTY: true },
    );
    // Before: exit 3 and only "attempt 1", the second attempt running on unseen.
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'attempt 1\nattempt 2\n');
    assert.match(
      result.stderr,
      /^jobworker: job \S+ failed: exited with code 3; attempt 1 of 3, retried as (\S+)$/m,
    );
    const next = /retried as (\S+)$/m.exec(result.stderr)![1]!;
    assert.match(result.stderr, new RegExp(`^jobworker: following attempt 2 of 3, job ${next}`, 'm'));
    const named = await runCliInProcess(['status', '--json', 'two-tries'], t.env);
    assert.equal((JSON.parse(named.stdout) as ApiJob).id, next, named.stderr);
  });

  it("exits with the last attempt's failure when every attempt fails; --json has each attempt", async () => {
    const failing = await runCliInProcess(
      ['start', '-f', '--retry', '1', '--retry-backoff', '10ms', '--', 'sh', '-c', 'exit 4'],
      t.env,
    );
    assert.equal(failing.code, 4, failing.stderr);

    const result = await runCliInProcess(
      ['start', '--json', '-f', '--retry', '2', '--retry-backoff', '10ms,1', '--', ...flaky(2)],
      t.env,
    );
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout) as OutputJson;
    assert.deepEqual([doc.job.attempt, doc.job.status], [2, 'succeeded']);
    assert.equal(text(doc.output), 'attempt 2\n');
    const earlier = doc.earlierAttempts ?? [];
    assert.deepEqual(
      earlier.map(({ job }) => [job.attempt, job.status, job.retriedAs]),
      [[1, 'failed', doc.job.id]],
    );
    assert.equal(text(earlier[0]!.output), 'attempt 1\n');
  });

  it('logs -f of an earlier attempt follows the chain to its end', async () => {
    const started = await runCliInProcess(
      ['start', '--json', '-f', '--retry', '2', '--retry-backoff', '10ms,1', '--', ...flaky(3)],
      t.env,
    );
    assert.equal(started.code, 0, started.stderr);
    const first = (JSON.parse(started.stdout) as OutputJson).earlierAttempts![0]!.job;
    const logs = await runCliInProcess(['logs', '-f', first.id], t.env);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, 'attempt 1\nattempt 2\nattempt 3\n');
    const once = await runCliInProcess(['logs', first.id], t.env);
    assert.deepEqual([once.code, once.stdout], [0, 'attempt 1\n'], 'without -f: that attempt alone');
  });

  it("a retried job's name names its newest attempt, unless another job has it too", async () => {
    // Seven attempts: more than the first page of a name's matches (six).
    const started = await runCliInProcess(
      [
        'start',
        '--json',
        '-f',
        '--name',
        'seven-tries',
        '--retry',
        '6',
        '--retry-backoff',
        '10ms,1',
        '--',
        ...flaky(9),
      ],
      t.env,
    );
    assert.equal(started.code, 3, started.stderr);
    const last = (JSON.parse(started.stdout) as OutputJson).job;
    assert.equal(last.attempt, 7);
    // Before: `Name "seven-tries" matches 7 jobs` (AMBIGUOUS), for every command given the name.
    const status = await runCliInProcess(['status', '--json', 'seven-tries'], t.env);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as ApiJob).id, last.id);

    const other = await runCliInProcess(['start', '-f', '--name', 'seven-tries', '--', 'true'], t.env);
    assert.equal(other.code, 0, other.stderr);
    const ambiguous = await runCliInProcess(['status', 'seven-tries'], t.env);
    assert.equal(ambiguous.code, 1);
    assert.match(
      ambiguous.stderr,
      /^jobworker: Name "seven-tries" matches more than 5 jobs: .*\(AMBIGUOUS\)\n$/,
    );
  });
});
