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
