import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { childPath } from '../../src/core/child-path.ts';
import { resolveEngineOptions } from '../../src/engine/engine-options.ts';
import { jobIoPaths } from '../../src/runtime/job-io.ts';
import type { JobStore } from '../../src/store/job-store.ts';

const store = {} as JobStore; // resolving options reads nothing of the store

test("the jobs' io directory is the temp directory's jobworker-io-<hash of the data directory>, unless given", () => {
  const hash = createHash('sha256').update(resolve('/var/lib/jobworker')).digest('hex').slice(0, 16);
  const expected = join(tmpdir(), `jobworker-io-${hash}`);
  assert.equal(resolveEngineOptions({ dataDir: '/var/lib/jobworker', store }).ioDir, expected);
  // The same data directory however it is spelled; an explicit undefined is no choice.
  assert.equal(
    resolveEngineOptions({ dataDir: '/var/lib/jobworker/', store, ioDir: undefined }).ioDir,
    expected,
  );
  assert.notEqual(resolveEngineOptions({ dataDir: '/var/lib/other', store }).ioDir, expected);
  assert.equal(
    resolveEngineOptions({ dataDir: '/var/lib/jobworker', store, ioDir: '/srv/io' }).ioDir,
    '/srv/io',
  );
});

test('a given io directory is normalized once, so that the paths joined to it by concatenation are too', () => {
  const options = resolveEngineOptions({ dataDir: '/var/lib/jobworker', store, ioDir: '/srv//a/../io/' });
  assert.equal(options.ioDir, '/srv/io/');
  const paths = jobIoPaths(options.ioDir, '0193');
  assert.deepEqual(paths, {
    dir: '/srv/io/0193',
    result: '/srv/io/0193/result.json',
    progress: '/srv/io/0193/progress.jsonl',
  });
  assert.equal(jobIoPaths('/srv/io', '0193').dir, '/srv/io/0193');
  assert.equal(childPath('/', 'jobs'), '/jobs');
});
