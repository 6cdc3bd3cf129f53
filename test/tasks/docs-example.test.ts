import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

it('runs the example of docs/tasks.md as a program, as a user would', async () => {
  const doc = await readFile(join(ROOT, 'docs/tasks.md'), 'utf8');
  const match = /<!-- example: tasks -->\n```ts\n([\s\S]*?)```/.exec(doc);
  assert.ok(match?.[1], 'docs/tasks.md has the marked example');
  // Inside the package, so `jobworker/tasks` resolves through package.json `exports`.
  const dir = await mkdtemp(join(ROOT, 'test/tasks/.example-'));
  try {
    const file = join(dir, 'example.ts');
    await writeFile(file, match[1]);
    const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: dir, timeout: 60_000 });
    assert.equal(stdout, 'fib succeeded: 75025\ncountdown succeeded after 3 polls: lift-off\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
