import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
// By package name, as a user imports it: resolved through package.json `exports`.
import { JobworkerApiError, JobworkerClient } from 'jobworker/client';
import { type ApiHarness, openApi } from '../api/api-harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('JobworkerClient.runTask against a server with examples/tasks/tasks.yaml', () => {
  let h: ApiHarness;
  let jw: JobworkerClient;
  before(async () => {
    h = await openApi(undefined, { tasks: join(ROOT, 'examples/tasks/tasks.yaml') });
    jw = new JobworkerClient({
      url: h.server.url,
      token: h.token,
      ca: await readFile(h.server.caFile!, 'utf8'),
    });
  });
  after(() => h.destroy());

  it('resolves with the result of a run', async () => {
    assert.equal(await jw.runTask<number>('power_sim', { a: 3, b: 3, delay_seconds: 0 }), 27);
  });

  it('rejects a failed run with JOB_FAILED and bad parameters with VALIDATION_FAILED naming them', async () => {
    await assert.rejects(jw.runTask('failing_sim', { a: 2, delay_seconds: 0 }), (err: JobworkerApiError) => {
      assert.ok(err instanceof JobworkerApiError);
      assert.equal(err.code, 'JOB_FAILED');
      assert.match(err.message, /exited with code 3/);
      return true;
    });
    await assert.rejects(jw.runTask('power_sim', { a: 2 }), (err: JobworkerApiError) => {
      assert.equal(err.code, 'VALIDATION_FAILED');
      assert.equal(err.field, 'params.b');
      return true;
    });
  });
});
