import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiJob, JobPage } from '../../src/client/api-types.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

const cli = (args: readonly string[]) => runCliInProcess(args, t.env);
async function json<T>(args: readonly string[]): Promise<T> {
  const result = await cli(['--json', ...args]);
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}
const ids = async (args: readonly string[]) => (await json<JobPage>(['list', ...args])).jobs.map((j) => j.id);

describe('jobworker list --queue --text', () => {
  it('lists the jobs of one queue, and those whose name or command line holds a text', async () => {
    const archive = await json<ApiJob>(['start', '--queue', 'cli-lf', '--', 'true', 'Archive-Photos']);
    const named = await json<ApiJob>(['start', '--name', 'photo archive', '--', 'true', 'x']);
    const other = await json<ApiJob>(['start', '--queue', 'cli-lf', '--', 'true', 'other']);

    assert.deepEqual(await ids(['--queue', 'cli-lf']), [other.id, archive.id]);
    assert.deepEqual(await ids(['--text', 'ARCHIVE']), [named.id, archive.id]);
    assert.deepEqual(await ids(['--queue', 'cli-lf', '--text', 'archive']), [archive.id]);
    assert.deepEqual(await ids(['--queue', 'cli-lf', '--limit', '1']), [other.id]);

    const table = await cli(['list', '--text', 'true archive-photos']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^${archive.id} .* cli-lf +true Archive-Photos\\n$`, 'm'));
    assert.equal(table.stdout.split('\n').length, 3, table.stdout);
    assert.equal((await cli(['list', '--queue', 'no-such-queue'])).stdout, 'No jobs.\n');
  });

  it('refuses a text that is empty or too long as a usage error naming --text, before asking', async () => {
    for (const text of ['', 'x'.repeat(201)]) {
      const bad = await cli(['list', '--text', text]);
      assert.equal(bad.code, 2, bad.stdout);
      assert.match(bad.stderr, /--text/);
      assert.match(bad.stderr, /1 to 200 characters/);
    }
  });
});

describe('jobworker list --label', () => {
  it('filters by one label, and refuses a second --label rather than keep only the last', async () => {
    const prod = await json<ApiJob>([
      'start',
      '--label',
      'env=prod-lf',
      '--label',
      'app=web-lf',
      '--',
      'true',
    ]);
    const staging = await json<ApiJob>([
      'start',
      '--label',
      'env=staging-lf',
      '--label',
      'app=web-lf',
      '--',
      'true',
    ]);
    assert.deepEqual(await ids(['--label', 'app=web-lf']), [staging.id, prod.id]);
    assert.deepEqual(await ids(['--label', 'env=staging-lf']), [staging.id]);

    const both = await cli(['--json', 'list', '--label', 'env=staging-lf', '--label', 'app=web-lf']);
    assert.equal(both.code, 2, both.stdout);
    assert.equal(both.stdout, '');
    const { error } = JSON.parse(both.stderr) as { error: { code: string; message: string } };
    assert.equal(error.code, 'USAGE');
    assert.match(error.message, /--label/);
    assert.match(error.message, /Expected one --label .*got a second after "env=staging-lf"/);
  });
});
