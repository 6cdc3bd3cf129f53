import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

it('runs the worker example of docs/library.md as a program, as a user would', async () => {
  const doc = await readFile(join(ROOT, 'docs/library.md'), 'utf8');
  const match = /<!-- example: worker -->\n```ts\n([\s\S]*?)```/.exec(doc);
  assert.ok(match?.[1], 'docs/library.md has the marked example');
  // Inside the package, so `jobworker/worker` resolves through package.json `exports`.
  const dir = await mkdtemp(join(ROOT, 'test/worker/.example-'));
  try {
    const file = join(dir, 'example.ts');
    await writeFile(file, match[1]);
    const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: dir, timeout: 60_000 });
    assert.equal(stdout, 'hello from a job\nsucceeded: exited with code 0\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
