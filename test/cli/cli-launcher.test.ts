import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  baseEnv,
  CLI_MAIN,
  CliProcess,
  jobworker,
  jobworkerJson,
  LAUNCHER,
  REPO,
  startTestServer,
  type TestServer,
} from './cli-harness.ts';

describe('bin/jobworker', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer();
  });
  after(() => ts.close());

  it('runs what the harness runs: the bundle while the build is current', async () => {
    const job = await jobworkerJson<{ id: string }>(
      ['start', '--', 'sh', '-c', 'echo ready; sleep 60'],
      ts.env,
    );
    // A follow stays up until the job ends: long enough to read its command line.
    const follow = new CliProcess(['logs', '-f', job.id], ts.env, LAUNCHER);
    try {
      // Printing the job's output, it is Node, exec'd by the launcher in the same process.
      await follow.waitForStdout('ready');
      const cmdline = readFileSync(`/proc/${follow.child.pid}/cmdline`, 'utf8').split('\0');
      assert.equal(cmdline[1], CLI_MAIN);
    } finally {
      follow.child.kill();
      await follow.result();
      await jobworker(['stop', job.id], ts.env);
    }
  });

  // The options before the command (the Job Worker grammar's `worker-cli [options] status ID`): Node
  // once printed an ExperimentalWarning there (the server's bundle loaded through vm's import()).
  it('writes nothing of its own on stderr with the options before the command', async () => {
    const missing = '01a24c56-0000-7000-8000-000000000000';
    const notFound = await new CliProcess(['--json', 'status', missing], ts.env, LAUNCHER).result();
    assert.equal(notFound.code, 1);
    assert.deepEqual(JSON.parse(notFound.stderr), {
      error: { code: 'NOT_FOUND', message: `No job with id ${missing}` },
    });
    assert.equal(notFound.stderr, `${notFound.stderr.trimEnd()}\n`);
    const misspelt = await new CliProcess(['--json', 'statu', missing], ts.env, LAUNCHER).result();
    assert.equal(misspelt.code, 2);
    assert.equal(JSON.parse(misspelt.stderr).error.code, 'USAGE');
    const help = await new CliProcess(['--json', '--help'], ts.env, LAUNCHER).result();
    assert.equal(help.stderr, '');

    const job = await jobworkerJson<{ id: string }>(
      ['start', '--', 'sh', '-c', 'echo out; echo err >&2'],
      ts.env,
    );
    await jobworker(['logs', '-f', job.id], ts.env);
    const { host } = new URL(ts.env.JOBWORKER_URL!);
    const output = await new CliProcess(
      [`--address=${host}`, '--debug', 'output', job.id],
      ts.env,
      LAUNCHER,
    ).result();
    assert.equal(output.code, 0, output.stderr);
    assert.equal(output.stdout, 'out\n');
    // --debug's own lines, then exactly the job's stderr.
    assert.equal(output.stderr.replace(/^jobworker: debug: .*\n/gm, ''), 'err\n');
  });

  it('runs from a relative path, as ./jobworker in bin/', async () => {
    const child = spawn('./jobworker', ['--version'], { cwd: join(REPO, 'bin'), env: baseEnv() });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    const [code] = await once(child, 'close');
    assert.equal(code, 0);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
