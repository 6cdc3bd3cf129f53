import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { CLI_MAIN, jobworker, jobworkerJson, startTestServer, type TestServer } from './cli-harness.ts';

// `jobworker start -f -- ./job | head -1`: the reader of the CLI's stdout goes away. The CLI is a
// real process here (a closed pipe is the process's own stdout), and the pipe is closed by the test
// as `head` would close it, after the first bytes.

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

/** Runs the CLI with its stdout to a pipe whose reader goes away at the first bytes. */
async function readFirstBytesOnly(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    env: t.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  child.stdout.once('data', () => child.stdout.destroy());
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stderr };
}

/** Prints a line every 50 ms until stopped. */
const printsForever = ['sh', '-c', 'while :; do echo tick; sleep 0.05; done'];

describe('a closed pipe', () => {
  it('ends start -f with 141 as SIGPIPE would, leaving the job running and saying so', async () => {
    const { code, stderr } = await readFirstBytesOnly([
      'start',
      '-f',
      '--name',
      'piped-start',
      '--',
      ...printsForever,
    ]);
    const job = await jobworkerJson<ApiJob>(['status', 'piped-start'], t.env);
    // Before: 0, so that `set -o pipefail; jobworker start -f -- ./job | head -1` reported success.
    assert.equal(code, 141, stderr);
    assert.equal(
      stderr,
      `jobworker: the reader of the output went away; stopped following job ${job.id}, which is left ` +
        `running if it still was (jobworker logs -f ${job.id}, jobworker stop ${job.id})\n`,
    );
    assert.equal(job.status, 'running', 'the job is left running');
    assert.equal((await jobworker(['stop', job.id], t.env)).code, 0);
  });

  it('ends logs -f with 141 too; logs without -f, which only prints, exits 0', async () => {
    // 4 MiB: more than a pipe holds, so the CLI is still writing when its reader goes away.
    const big = await jobworkerJson<ApiJob>(['start', '--', 'head', '-c', '4194304', '/dev/zero'], t.env);
    assert.equal((await jobworker(['logs', '-f', big.id], { ...t.env })).code, 0);
    const followed = await readFirstBytesOnly(['logs', '-f', big.id]);
    assert.equal(followed.code, 141, followed.stderr);
    assert.match(
      followed.stderr,
      new RegExp(`^jobworker: the reader of the output went away; stopped following job ${big.id}`),
    );
    const printed = await readFirstBytesOnly(['logs', big.id]);
    assert.deepEqual(printed, { code: 0, stderr: '' });
  });
});
