import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { staleInput } from '../../src/cli/stale-bundle.ts';

test('a bundle is stale when one of its sources is newer than its build, or gone, or its list is', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'jw-stale-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'src'));
  await mkdir(join(root, 'dist'));
  const builtAt = Date.now();
  const past = new Date(builtAt - 60_000);
  for (const name of ['a.ts', 'b.ts']) {
    await writeFile(join(root, 'src', name), '');
    await utimes(join(root, 'src', name), past, past);
  }
  await writeFile(
    join(root, 'dist/x.inputs.json'),
    JSON.stringify({ builtAt, inputs: ['src/a.ts', 'src/b.ts'] }),
  );
  assert.equal(staleInput(root, ['x']), undefined, 'current');
  assert.equal(staleInput(root, ['x', 'y']), join(root, 'dist/y.inputs.json'), 'a bundle without its list');
  const future = new Date(builtAt + 60_000);
  await utimes(join(root, 'src/b.ts'), future, future);
  assert.equal(staleInput(root, ['x']), 'src/b.ts', 'edited after the build');
  await rm(join(root, 'src/b.ts'));
  assert.equal(staleInput(root, ['x']), 'src/b.ts', 'gone');
  // An install without its sources has nothing to be newer.
  await rm(join(root, 'src'), { recursive: true });
  assert.equal(staleInput(root, ['x', 'y']), undefined);
});
