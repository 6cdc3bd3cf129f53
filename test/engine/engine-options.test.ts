import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { resolveEngineOptions } from '../../src/engine/engine-options.ts';
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
