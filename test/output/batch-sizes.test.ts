import assert from 'node:assert/strict';
import fs, { type StatSyncOptions } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { loadNativeAddon } from '../../src/core/native-addon.ts';
import {
  type BatchSizes,
  batchSizesThrough,
  DIRS_PER_CALL,
  type FileSizesAddon,
  loadBatchSizes,
} from '../../src/output/batch-sizes.ts';
import { readOutputSizesSync } from '../../src/output/output-files.ts';
import { jobDir } from './output-helpers.ts';

/** The addon as built by setup (its raw `fileSizes`, for the argument checks). */
function realAddon(): FileSizesAddon {
  const loaded = loadNativeAddon<FileSizesAddon>('file-sizes.node');
  assert.ok('addon' in loaded, `expected the addon, got: ${'reason' in loaded ? loaded.reason : ''}`);
  return loaded.addon;
}

function realBatchSizes(): BatchSizes {
  const loaded = loadBatchSizes();
  assert.ok('batchSizes' in loaded, `expected the addon, got: ${'reason' in loaded ? loaded.reason : ''}`);
  return loaded.batchSizes;
}

test('the batch reads what the synchronous stats read: sizes, 0 for a stream or directory not there', async (t) => {
  const dir = await jobDir(t);
  const both = join(dir, 'both');
  const outOnly = join(dir, 'out-only');
  const gone = join(dir, 'gone');
  await mkdir(both);
  await mkdir(outOnly);
  await writeFile(join(both, 'stdout'), 'hello\n');
  await writeFile(join(both, 'stderr'), Buffer.alloc(70_000));
  await writeFile(join(outOnly, 'stdout'), 'x');
  const dirs = [both, outOnly, gone, both];
  const sizes = await realBatchSizes()(dirs);
  assert.deepEqual(sizes, [
    { stdout: 6, stderr: 70_000 },
    { stdout: 1, stderr: 0 },
    { stdout: 0, stderr: 0 },
    { stdout: 6, stderr: 70_000 },
  ]);
  assert.deepEqual(
    sizes,
    dirs.map((d) => readOutputSizesSync(d)),
  );
  assert.deepEqual(await realBatchSizes()([]), []);
});

test('a directory whose streams cannot be stat-ed gets its own error; the others their sizes', async (t) => {
  const dir = await jobDir(t);
  const file = join(dir, 'a-file');
  await writeFile(file, 'not a directory');
  await writeFile(join(dir, 'stdout'), 'abc');
  const long = join(dir, 'x'.repeat(5000));
  const [notDir, sound, tooLong] = await realBatchSizes()([file, dir, long]);
  assert.ok(notDir instanceof Error);
  assert.equal((notDir as NodeJS.ErrnoException).code, 'ENOTDIR');
  assert.equal((notDir as NodeJS.ErrnoException).path, `${file}/stdout`);
  // As fs.statSync words it.
  assert.match(notDir.message, /^ENOTDIR: not a directory, stat '.*a-file\/stdout'$/);
  assert.deepEqual(sound, { stdout: 3, stderr: 0 });
  assert.ok(tooLong instanceof Error);
  assert.equal((tooLong as NodeJS.ErrnoException).code, 'ENAMETOOLONG');
});

test('many directories go in calls of DIRS_PER_CALL, one after another, in order', async (t) => {
  const dir = await jobDir(t);
  const count = 2 * DIRS_PER_CALL + 3;
  const dirs: string[] = [];
  for (let i = 0; i < count; i++) {
    const d = join(dir, String(i));
    await mkdir(d);
    await writeFile(join(d, 'stdout'), Buffer.alloc(i));
    dirs.push(d);
  }
  const addon = realAddon();
  const calls: number[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const counted = batchSizesThrough({
    fileSizes: async (chunk, names) => {
      calls.push(chunk.length);
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        return await addon.fileSizes(chunk, names);
      } finally {
        inFlight--;
      }
    },
  });
  const sizes = await counted(dirs);
  assert.deepEqual(calls, [DIRS_PER_CALL, DIRS_PER_CALL, 3]);
  assert.equal(mostInFlight, 1, 'one pool thread at a time');
  assert.deepEqual(
    sizes,
    dirs.map((_, i) => ({ stdout: i, stderr: 0 })),
  );
});

test('stderr is stat-ed before stdout: lines a job writes between the two reads keep their order', async (t) => {
  // The job writes "hello" to stdout and then "oops" to stderr while the sizes are read, between
  // the read of the first stream and that of the second. The combined index records stdout before
  // stderr, so the batch must never count the stderr line without the stdout line before it.
  const dir = await jobDir(t);
  const addon = realAddon();
  const named: string[][] = [];
  const interleaved = batchSizesThrough({
    fileSizes: async (chunk, names) => {
      named.push([...names]);
      const sizes: number[] = [];
      for (const [j, name] of names.entries()) {
        sizes.push((await addon.fileSizes(chunk, [name]))[0]!);
        if (j === 0) {
          await writeFile(join(dir, 'stdout'), 'hello\n');
          await writeFile(join(dir, 'stderr'), 'oops\n');
        }
      }
      return new Float64Array(sizes);
    },
  });
  assert.deepEqual(await interleaved([dir]), [{ stdout: 6, stderr: 0 }]);
  assert.deepEqual(named, [['stderr', 'stdout']]);
});

test('the synchronous stats read stderr before stdout too, with the same lines between them', async (t) => {
  const dir = await jobDir(t);
  const real = fs.statSync;
  const stated: string[] = [];
  // The named import of output-files.ts sees the mock once the built-in's exports are synced.
  t.mock.method(fs, 'statSync', ((path: string, options?: StatSyncOptions) => {
    const result = real(path, options);
    stated.push(basename(path));
    if (stated.length === 1) {
      fs.writeFileSync(join(dir, 'stdout'), 'hello\n');
      fs.writeFileSync(join(dir, 'stderr'), 'oops\n');
    }
    return result;
  }) as typeof fs.statSync);
  syncBuiltinESMExports();
  try {
    assert.deepEqual(readOutputSizesSync(dir), { stdout: 6, stderr: 0 });
  } finally {
    t.mock.restoreAll();
    syncBuiltinESMExports();
  }
  assert.deepEqual(stated, ['stderr', 'stdout']);
});

test('the addon refuses bad arguments with a TypeError before it stats anything', () => {
  const addon = realAddon();
  const bad: [unknown, unknown][] = [
    ['/tmp', ['stdout']],
    [['/tmp'], 'stdout'],
    [[42], ['stdout']],
    [['/tmp'], [null]],
    [['/tmp\0/etc'], ['passwd']],
    [['/tmp'], Array.from({ length: 17 }, () => 'stdout')],
    [Array.from({ length: 65537 }, () => '/tmp'), ['stdout']],
  ];
  for (const [dirs, names] of bad) {
    assert.throws(
      () => addon.fileSizes(dirs as string[], names as string[]),
      TypeError,
      `${String(dirs).slice(0, 20)} / ${String(names).slice(0, 20)}`,
    );
  }
  assert.throws(() => addon.fileSizes(['/tmp'], ['std\0out']), TypeError, 'a NUL in a name');
  assert.throws(() => addon.fileSizes([''], ['stdout']), TypeError, 'an empty directory');
  assert.throws(() => (addon.fileSizes as unknown as (d: string[]) => unknown)(['/tmp']), TypeError);
  // An element whose getter throws: its own error comes through, not a TypeError over it.
  const trap: string[] = [];
  Object.defineProperty(trap, 0, {
    get: () => {
      throw new Error('getter said no');
    },
  });
  assert.throws(() => addon.fileSizes(trap, ['stdout']), /getter said no/);
});

test('the addon answers empty arrays with an empty array', async () => {
  const addon = realAddon();
  assert.deepEqual([...(await addon.fileSizes([], ['stdout']))], []);
  assert.deepEqual([...(await addon.fileSizes(['/tmp'], []))], []);
});

test('without the addon, loading says it is not built and how to build it', () => {
  assert.deepEqual(loadBatchSizes(['./no-such-dir/file-sizes.node']), {
    reason: 'file-sizes.node: not built (scripts/build-native.sh)',
  });
});
