import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isolationBody } from '../../src/cli/isolation-options.ts';
import type { ApiJob, ApiQueue } from '../../src/client/api-types.ts';
import { jobworker, jobworkerJson, startTestServer, type TestServer } from './cli-harness.ts';

type IsolatedJob = ApiJob & { isolation?: unknown };
const needsRoot = { skip: process.getuid?.() === 0 ? false : 'namespaces need root here' };

describe('start: the isolation options as a request', () => {
  it('--isolate is pid + private /tmp + no network; finer flags add to it or stand alone', () => {
    assert.equal(isolationBody({}), undefined);
    assert.deepEqual(isolationBody({ isolate: true }), {
      pid: true,
      network: 'none',
      mount: { privateTmp: true },
    });
    assert.deepEqual(isolationBody({ isolate: true, readOnly: ['/etc'], hostname: 'h' }), {
      pid: true,
      network: 'none',
      mount: { privateTmp: true, readOnly: ['/etc'] },
      hostname: 'h',
    });
    assert.deepEqual(isolationBody({ isolate: true, network: 'host' }), {
      pid: true,
      mount: { privateTmp: true },
      network: 'host',
    });
    assert.deepEqual(isolationBody({ isolatePid: true, hide: ['/root', '/srv'] }), {
      pid: true,
      mount: { hide: ['/root', '/srv'] },
    });
    assert.deepEqual(isolationBody({ network: 'host' }), { network: 'host' }, 'sent, to override a default');
  });

  it('a bad path or host name is a usage error naming the flag', () => {
    assert.throws(() => isolationBody({ readOnly: ['etc'] }), /^UsageError: --read-only: Expected/);
    assert.throws(() => isolationBody({ hide: ['/'] }), /--hide: /);
    assert.throws(() => isolationBody({ hostname: 'a b' }), /--hostname: /);
  });
});

describe('jobworker start --isolate, queue set --isolation', needsRoot, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it('runs the job isolated and shows its isolation', async () => {
    const job = await jobworkerJson<IsolatedJob>(
      [
        'start',
        '--isolate',
        '--hostname',
        'cli-job',
        '--cwd',
        '/',
        '--',
        'sh',
        '-c',
        // `exec`: ps lists no shell pipeline half-forked (a race that failed CI once).
        'hostname; exec ps ax -o pid=',
      ],
      t.env,
    );
    assert.deepEqual(job.isolation, {
      pid: true,
      network: 'none',
      mount: { privateTmp: true },
      hostname: 'cli-job',
    });
    const logs = await jobworker(['logs', '-f', job.id], t.env);
    assert.deepEqual(logs.stdout.trim().split(/\s+/), ['cli-job', '1', '2'], 'pid 1 and the command');
    assert.equal(logs.code, 0);
  });

  it('--network with a bad value is a usage error (exit 2)', async () => {
    const bad = await jobworker(['start', '--network', 'bridge', '--', 'true'], t.env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--network/);
  });

  it('queue set --isolation gives the queue a default, shown by queue show; none clears it', async () => {
    const set = await jobworkerJson<ApiQueue>(['queue', 'set', 'boxed', '--isolation', 'isolate'], t.env);
    assert.deepEqual(set.isolation, { pid: true, network: 'none', mount: { privateTmp: true } });
    const shown = await jobworker(['queue', 'show', 'boxed'], t.env);
    assert.match(shown.stdout, /^Isolation +\{"pid":true,"network":"none","mount":\{"privateTmp":true\}\}$/m);
    const job = await jobworkerJson<IsolatedJob>(
      ['start', '--queue', 'boxed', '--cwd', '/', '--', 'true'],
      t.env,
    );
    assert.deepEqual(job.isolation, set.isolation);
    const bad = await jobworker(['queue', 'set', 'boxed', '--isolation', '{"pid":"yes"}'], t.env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /isolation\.pid/);
    const cleared = await jobworkerJson<ApiQueue>(['queue', 'set', 'boxed', '--isolation', 'none'], t.env);
    assert.equal(cleared.isolation, null);
  });

  it("user set --isolation gives a user's jobs a default; none clears it", async () => {
    const added = await jobworker(['user', 'add', 'dora', '--role', 'user'], t.env);
    assert.equal(added.code, 0, added.stderr);
    const set = await jobworker(['user', 'set', 'dora', '--isolation', '{"network":"none"}'], t.env);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'user dora: default isolation {"network":"none"}\n');
    const cleared = await jobworkerJson<{ isolation: unknown }>(
      ['user', 'set', 'dora', '--isolation', 'none'],
      t.env,
    );
    assert.equal(cleared.isolation, null);
  });
});
