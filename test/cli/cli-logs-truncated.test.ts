import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { waitForFileText } from '../helpers/wait.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

// `jobworker logs` of a job that truncated its own stderr (`echo x > /dev/stderr`): it reads to
// the end, says how many bytes were lost and where, and prints what the job wrote after.

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

const cli = (...args: string[]) => runCliInProcess(args, t.env);

interface LogsDoc {
  job: ApiJob;
  output: { stream: string; data: string; cursor: string }[];
  truncated: { stream: string | null; skippedBytes: number | null; cursor: string }[];
}

it('logs reads every view of a job that truncated its stderr, with the loss marked', async () => {
  const first = 'a long first line of details\n';
  const [gate, gate2] = [1, 2].map((n) => join(t.dataDir, `gate-${n}-${process.hrtime.bigint()}`));
  for (const fifo of [gate!, gate2!]) execFileSync('mkfifo', ['-m', '0666', fifo]);
  const started = await cli(
    '--json',
    'start',
    '--',
    'sh',
    '-c',
    `printf '${first.trimEnd()}\\n' >&2; read go < ${gate}; echo short > /dev/stderr; read go < ${gate2}; echo done`,
  );
  assert.equal(started.code, 0, started.stderr);
  const job = JSON.parse(started.stdout) as ApiJob;
  await waitForFileText(join(t.dataDir, 'jobs', job.id, 'stderr'), first);
  // A read of the running job observes it: the server has seen the first line.
  const before = await cli('logs', '--stderr', job.id);
  assert.equal(before.stdout, first);
  await writeFile(gate!, 'go\n');
  const stderr = join(t.dataDir, 'jobs', job.id, 'stderr');
  await waitForFileText(stderr, 'short');
  // Observed before `done` comes: the combined view's order is the order of observation.
  const later = await cli('logs', '--stderr', job.id);
  assert.equal(later.code, 0, later.stderr);
  assert.equal(later.stdout, 'short\n');
  await writeFile(gate2!, 'go\n');
  const followed = await cli('logs', '-f', job.id);
  assert.equal(followed.code, 0, followed.stderr);
  assert.equal(followed.stdout, 'done\n');

  for (const view of [[], ['--stderr']]) {
    const result = await cli('--json', 'logs', ...view, job.id);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout) as LogsDoc;
    assert.deepEqual(doc.truncated, [
      { stream: 'stderr', skippedBytes: first.length, cursor: String(first.length) },
    ]);
    const text = doc.output.map((o) => `${o.stream}:${Buffer.from(o.data, 'base64')}`).join('');
    assert.equal(text, view.length === 0 ? 'stderr:short\nstdout:done\n' : 'stderr:short\n');
  }
});
