import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openApi } from '../api/api-harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

it('runs the client example of docs/library.md as a program against a real server', async () => {
  const doc = await readFile(join(ROOT, 'docs/library.md'), 'utf8');
  const match = /<!-- example: client -->\n```ts\n([\s\S]*?)```/.exec(doc);
  assert.ok(match?.[1], 'docs/library.md has the marked example');
  const h = await openApi();
  // Inside the package, so `jobworker/client` resolves through package.json `exports`.
  const dir = await mkdtemp(join(ROOT, 'test/client/.example-'));
  try {
    const file = join(dir, 'example.ts');
    await writeFile(file, match[1]);
    const env = {
      ...process.env,
      JOBWORKER_URL: h.server.url,
      JOBWORKER_TOKEN: h.token,
      JOBWORKER_CA: h.server.caFile ?? '',
    };
    const { stdout } = await promisify(execFile)(process.execPath, [file], {
      cwd: dir,
      env,
      timeout: 60_000,
    });
    assert.equal(stdout, 'hello from a server job\nsucceeded: exit code 0\n409: it had already finished\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
    await h.destroy();
  }
});
