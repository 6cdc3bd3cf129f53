import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ApiHarness, openApi } from '../api/api-harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('docs/tasks.md: the async task manager curl session', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { tasks: join(ROOT, 'examples/tasks/tasks.yaml') });
  });
  after(() => h.destroy());

  it('runs as documented against a server with examples/tasks/tasks.yaml, and prints what the docs say', async () => {
    const doc = await readFile(join(ROOT, 'docs/tasks.md'), 'utf8');
    const block = /<!-- example: task-session -->\n```sh\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(block, 'docs/tasks.md has the marked session');
    const printed = /```sh\n[\s\S]*?```\n\nIt prints:\n\n```\n([\s\S]*?)```/.exec(
      doc.slice(doc.indexOf('<!-- example: task-session -->')),
    )?.[1];
    assert.ok(printed, 'docs/tasks.md shows what the session prints');
    const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', block], {
      env: { ...process.env, URL: h.server.url, TOKEN: h.token, CA: h.server.caFile! },
      timeout: 60_000,
    });
    const lines = stdout.trimEnd().split('\n');
    const expected = printed.trimEnd().split('\n');
    assert.equal(lines.length, expected.length, stdout);
    // What varies with timing: whether power_sim had started when asked, whether the last task
    // had (stopped) or not (cancelled).
    assert.match(lines[0] ?? '', /^(queued|running)$/);
    assert.deepEqual(lines.slice(1, 4), expected.slice(1, 4));
    assert.match(lines[4] ?? '', /^(stopped|cancelled)$/);
  });
});
