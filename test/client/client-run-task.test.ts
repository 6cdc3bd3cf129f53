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

  it("`parse` gets the result's own text: an integer above 2^53 kept exactly, as a BigInt or as text", async () => {
    const params = { a: 2, b: 62, delay_seconds: 0 };
    // JSON.parse's reviver gets each value's source text (TypeScript's lib does not declare it yet).
    const parseWithSource = JSON.parse as (
      text: string,
      reviver: (key: string, value: unknown, context: { source?: string }) => unknown,
    ) => unknown;
    const exact = await jw.runTask('power_sim', params, {
      parse: (text) =>
        parseWithSource(text, (_key, value, { source }) =>
          typeof value === 'number' && source !== undefined ? BigInt(source) : value,
        ),
    });
    assert.equal(exact, 4611686018427387904n);
    assert.equal(
      await jw.runTask<string>('power_sim', params, { parse: (text) => text }),
      '4611686018427387904',
    );
    // By default JSON.parse, whose numbers are doubles: 2^62 is one, printed rounded.
    assert.equal(String(await jw.runTask<number>('power_sim', params)), '4611686018427388000');
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
