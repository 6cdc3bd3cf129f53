import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runServer } from '../../src/main.ts';
import { LOCK_FILE } from '../../src/runtime/data-dir-lock.ts';
import { openApi } from './api-harness.ts';

describe('one server per data directory', () => {
  it('refuses a second server on a data directory in use, and takes over a stale lock', async () => {
    const h = await openApi();
    try {
      await assert.rejects(runServer({ listen: '127.0.0.1:0', dataDir: h.dataDir, logLevel: 'silent' }), {
        code: 'VALIDATION_FAILED',
        field: 'dataDir',
        message: new RegExp(`Another jobworker server \\(pid ${process.pid}\\) already uses`),
      });
      assert.equal((await h.json('/healthz')).status, 200, 'the first server is untouched');
      await h.server.close();
      // A lock left by a server that died: a pid that is not a live process with that start time.
      await writeFile(
        join(h.dataDir, LOCK_FILE),
        JSON.stringify({ pid: process.pid, startTicks: 1, bootId: 'x' }),
      );
      h.server = await runServer({ listen: '127.0.0.1:0', dataDir: h.dataDir, logLevel: 'silent' });
      const lock = JSON.parse(await readFile(join(h.dataDir, LOCK_FILE), 'utf8')) as { startTicks: number };
      assert.notEqual(lock.startTicks, 1, 'the new server holds the lock now');
    } finally {
      await h.destroy();
    }
  });
});
