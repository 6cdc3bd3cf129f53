import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

describe('JobworkerClient: a task retried by its `retry` policy', () => {
  let h: ApiHarness;
  let jw: JobworkerClient;
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-client-retries-'));
    // Its first attempt fails; its second leaves 42, once `{mark}.go` exists.
    const flaky = {
      command: [
        '/bin/sh',
        '-c',
        'if [ ! -e "$1" ]; then touch "$1"; echo first >&2; exit 3; fi; ' +
          'while [ ! -e "$1.go" ]; do sleep 0.02; done; echo 42 > "$JOBWORKER_RESULT"',
        'flaky',
        '{mark}',
      ],
      params: { mark: { type: 'string' } },
      retry: { attempts: 2, backoff: { initialMs: 0 } },
    };
    await writeFile(join(dir, 'tasks.json'), JSON.stringify({ tasks: { flaky } }));
    h = await openApi(undefined, { tasks: join(dir, 'tasks.json') });
    jw = new JobworkerClient({
      url: h.server.url,
      token: h.token,
      ca: await readFile(h.server.caFile!, 'utf8'),
    });
  });
  after(async () => {
    await h.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('runTask resolves with the result of the attempt that succeeded', async () => {
    const mark = join(dir, 'run-task');
    await writeFile(`${mark}.go`, '');
    assert.equal(await jw.runTask<number>('flaky', { mark }), 42);
  });

  it('wait goes on along the retries to the last attempt; followRetries: false waits for the one', async () => {
    const mark = join(dir, 'wait');
    const { body: first } = await h.json<{ id: string }>('/v1/tasks/flaky/runs', { body: { mark } });
    const once = await jw.wait(first.id, { followRetries: false });
    assert.deepEqual([once.id, once.status], [first.id, 'failed']);
    assert.ok(once.retriedAs);
    const waiting = jw.wait(first.id);
    await writeFile(`${mark}.go`, '');
    const last = await waiting;
    assert.deepEqual([last.id, last.status, last.retryOf], [once.retriedAs, 'succeeded', first.id]);
    assert.equal(await jw.result(first.id), 42, "the held id's result is its last attempt's");
  });
});
