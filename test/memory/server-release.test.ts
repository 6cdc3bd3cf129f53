import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runServer } from '../../src/main.ts';

test('RunningServer.releaseMemory gives memory back on demand, and does nothing once closed', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'jw-release-'));
  try {
    const server = await runServer({
      listen: '127.0.0.1:0',
      dataDir,
      logLevel: 'silent',
      insecureHttp: true,
    });
    let closed = false;
    try {
      // The test runner has no exposed gc: the store's page cache alone is released.
      await server.releaseMemory();
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200, 'the server answers as before');
      await server.close();
      closed = true;
      // Its store is closed: a release now would fail on it, so there is none.
      await server.releaseMemory();
    } finally {
      if (!closed) await server.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
