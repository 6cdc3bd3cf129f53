import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

const me = { user: 'tester' };

describe('engine input errors', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  const cases: [string, unknown, { code: string; field: string }][] = [
    [
      'command not found',
      { command: 'definitely-not-a-command' },
      { code: 'COMMAND_NOT_FOUND', field: 'command' },
    ],
    ['missing cwd', { command: 'true', cwd: '/no/such/dir' }, { code: 'VALIDATION_FAILED', field: 'cwd' }],
    [
      'NUL in an argument',
      { command: 'echo', args: ['a\0b'] },
      { code: 'VALIDATION_FAILED', field: 'args[0]' },
    ],
    ['empty command', { command: '' }, { code: 'VALIDATION_FAILED', field: 'command' }],
    ['not an object', 'ls', { code: 'VALIDATION_FAILED', field: 'spec' }],
  ];
  for (const [name, input, expected] of cases) {
    it(`${name}: a clear error and nothing half-created`, async () => {
      await assert.rejects(h.engine.start(input, me), (err: Error & { code?: string; field?: string }) => {
        assert.equal(err.code, expected.code);
        assert.equal(err.field, expected.field);
        assert.ok(err.message.length > 0);
        return true;
      });
      assert.deepEqual(await readdir(join(h.dataDir, 'jobs')), []);
      assert.equal((await h.engine.list({ limit: 10 })).jobs.length, 0);
    });
  }

  it('the engine stays up and serves the next job', async () => {
    const job = await h.engine.start({ command: 'echo', args: ['still here'] }, me);
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'succeeded');
    assert.equal((await h.engine.list({ limit: 10 })).jobs.length, 1);
  });

  it("a job never sees the server's environment, only its own", async () => {
    process.env.JW_SERVER_SECRET = 'hunter2';
    try {
      const job = await h.engine.start({ command: 'env', env: { MINE: 'yes' } }, me);
      await h.engine.waitFor(job.id);
      const page = await h.engine.readOutput(job.id, { selector: 'stdout', cursor: 0, limitBytes: 100_000 });
      const seen = Buffer.concat(page.events.flatMap((e) => (e.type === 'data' ? [e.data] : []))).toString();
      assert.match(seen, /^MINE=yes$/m);
      assert.ok(!seen.includes('JW_SERVER_SECRET') && !seen.includes('hunter2'), seen);
    } finally {
      delete process.env.JW_SERVER_SECRET;
    }
  });

  it('an unknown or malformed id is NOT_FOUND', async () => {
    await assert.rejects(h.engine.get('0192f0d8-0000-7000-8000-000000000000'), { code: 'NOT_FOUND' });
    await assert.rejects(h.engine.get('../etc'), { code: 'NOT_FOUND' });
    await assert.rejects(h.engine.readOutput('nope', { selector: 'stdout', cursor: 0, limitBytes: 10 }), {
      code: 'NOT_FOUND',
    });
  });
});
