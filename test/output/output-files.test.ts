import assert from 'node:assert/strict';
import { closeSync, writeSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { OUTPUT_FILE_NAMES, openOutputFiles } from '../../src/output/output-files.ts';
import { jobDir } from './output-helpers.ts';

test('openOutputFiles creates both streams private, append-only, and only once', async (t) => {
  const dir = await jobDir(t);
  const fds = await openOutputFiles(dir);
  try {
    // Append mode: a positioned write still lands at the end, as for every writer the job forks.
    writeSync(fds.stdout, 'first ');
    writeSync(fds.stdout, 'second', 0);
    writeSync(fds.stderr, 'err');
  } finally {
    closeSync(fds.stdout);
    closeSync(fds.stderr);
  }
  assert.equal(await readFile(join(dir, OUTPUT_FILE_NAMES.stdout), 'utf8'), 'first second');
  assert.equal(await readFile(join(dir, OUTPUT_FILE_NAMES.stderr), 'utf8'), 'err');
  for (const name of ['stdout', 'stderr'] as const) {
    assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600);
  }
  await assert.rejects(openOutputFiles(dir), { code: 'EEXIST' });
});
