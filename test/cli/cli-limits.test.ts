import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../src/cli/errors.ts';
import type { ApiJob, ApiQueue, ApiUser } from '../../src/client/api-types.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

// The limit flags of `start`, `queue set` and `user set-limits` (docs/cli.md), run in process
// against a real server: what they send is what the server keeps, and a bad value is a usage
// error (exit 2) naming the flag, with nothing sent.

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const noCgroups = new Cgroups({ name: 'jobworker-limits-test' }).mode === 'none' ? 'no cgroups here' : false;

describe('CLI limit flags', { skip: noCgroups }, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  const cli = (args: string[]) => runCliInProcess(args, t.env);
  async function json<T>(args: string[]): Promise<T> {
    // Options go before `--`: what follows it is the job's command.
    const dashes = args.indexOf('--');
    const result = await cli(
      dashes < 0 ? [...args, '--json'] : [...args.slice(0, dashes), '--json', ...args.slice(dashes)],
    );
    assert.equal(result.code, EXIT.ok, result.stderr);
    return JSON.parse(result.stdout) as T;
  }

  it('start --cpu --memory --memory-swap --pids --io-* sends the limits, which the job shows', async () => {
    const job = await json<ApiJob>([
      'start',
      '--cpu',
      '0.5',
      '--memory',
      '256M',
      '--memory-swap',
      '0',
      '--pids',
      '256',
      '--io-write',
      '10M',
      '--io-read',
      '20M',
      '--io-read-iops',
      '100',
      '--io-write-iops',
      '50',
      '--cwd',
      '/tmp',
      '--',
      'true',
    ]);
    assert.deepEqual(job.limits, {
      cpu: 0.5,
      memory: 256 * MiB,
      memorySwap: 0,
      pids: 256,
      io: { readBps: 20 * MiB, writeBps: 10 * MiB, readIops: 100, writeIops: 50 },
    });
    const millicores = await json<ApiJob>(['start', '--cpu', '250m', '--cwd', '/tmp', '--', 'true']);
    assert.deepEqual(millicores.limits, { cpu: 0.25 });
  });

  it('refuses a bad limit value as a usage error naming the flag, starting nothing', async () => {
    const before = await json<{ jobs: ApiJob[] }>(['list']);
    const bad = await cli(['start', '--memory', 'lots', '--', 'true']);
    assert.equal(bad.code, EXIT.usage);
    assert.match(bad.stderr, /`--memory`/);
    const mixed = await cli(['start', '--io-weight', '10', '--io-write', '1M', '--', 'true']);
    assert.equal(mixed.code, EXIT.usage);
    assert.match(mixed.stderr, /--io-weight/);
    const after = await json<{ jobs: ApiJob[] }>(['list']);
    assert.equal(after.jobs.length, before.jobs.length, 'no job was started');
  });

  it("queue set --default-* --max-* changes only the limits given; status shows the job's", async () => {
    const set = await json<ApiQueue>([
      'queue',
      'set',
      'batch',
      '--default-memory',
      '1G',
      '--max-memory',
      '4G',
    ]);
    assert.deepEqual([set.defaultLimits, set.maxLimits], [{ memory: GiB }, { memory: 4 * GiB }]);
    const more = await json<ApiQueue>(['queue', 'set', 'batch', '--default-cpu', '2', '--max-pids', '100']);
    assert.deepEqual(
      [more.defaultLimits, more.maxLimits],
      [
        { memory: GiB, cpu: 2 },
        { memory: 4 * GiB, pids: 100 },
      ],
    );
    const shown = await cli(['queue', 'show', 'batch']);
    assert.match(shown.stdout, /Default limits\s+cpu=2 CPUs, memory=1 GiB/);
    assert.match(shown.stdout, /Max limits\s+memory=4 GiB, pids=100/);
    const job = await json<ApiJob>(['start', '--queue', 'batch', '--cwd', '/tmp', '--', 'true']);
    assert.deepEqual(job.limits, { memory: GiB, cpu: 2, pids: 100 });
    const status = await cli(['status', job.id]);
    assert.match(status.stdout, /Limits\s+cpu=2 CPUs, memory=1 GiB, pids=100/);
    const over = await cli(['start', '--queue', 'batch', '--memory', '8G', '--', 'true']);
    assert.notEqual(over.code, EXIT.ok);
    assert.match(over.stderr, /at most 4 GiB \(the maximum of queue `batch`\)/);
    const cleared = await json<ApiQueue>(['queue', 'set', 'batch', '--clear-limits']);
    assert.deepEqual([cleared.defaultLimits, cleared.maxLimits], [{}, {}]);
  });

  it("user set-limits sets a user's defaults and maxima", async () => {
    assert.equal((await cli(['user', 'add', 'carol', '--role', 'user'])).code, EXIT.ok);
    const set = await json<ApiUser>([
      'user',
      'set-limits',
      'carol',
      '--default-memory',
      '512M',
      '--max-cpu',
      '1',
    ]);
    assert.deepEqual([set.defaultLimits, set.maxLimits], [{ memory: 512 * MiB }, { cpu: 1 }]);
    const text = await cli(['user', 'set-limits', 'carol', '--default-pids', '64']);
    assert.equal(text.code, EXIT.ok, text.stderr);
    assert.equal(text.stdout, 'user carol: default limits memory=512 MiB, pids=64; max limits cpu=1 CPU\n');
    const none = await cli(['user', 'set-limits', 'carol']);
    assert.equal(none.code, EXIT.usage);
    const cleared = await json<ApiUser>(['user', 'set-limits', 'carol', '--clear']);
    assert.deepEqual([cleared.defaultLimits, cleared.maxLimits], [{}, {}]);
  });
});
