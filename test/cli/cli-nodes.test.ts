import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiNode } from '../../src/client/api-types.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

describe('jobworker nodes', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it('lists a server on SQLite as the only node, marked as the one that answered, and shows a drain', async () => {
    const json = await runCliInProcess(['nodes', '--json'], t.env);
    assert.equal(json.code, 0, json.stderr);
    const { nodes } = JSON.parse(json.stdout) as { nodes: ApiNode[] };
    assert.equal(nodes.length, 1);
    assert.equal(nodes[0]!.self, true);
    assert.equal(nodes[0]!.state, 'active');
    assert.equal(nodes[0]!.url, t.server.url);
    const table = await runCliInProcess(['nodes'], t.env);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NODE\s+STATE\s+RUNNING\s+HEARTBEAT\s+URL/);
    assert.match(
      table.stdout,
      new RegExp(`${nodes[0]!.id} \\*\\s+active\\s+0\\s+just now\\s+${t.server.url}`),
    );
    assert.equal((await runCliInProcess(['drain', '--no-wait'], t.env)).code, 0);
    try {
      const drained = await runCliInProcess(['nodes', '--json'], t.env);
      assert.equal((JSON.parse(drained.stdout) as { nodes: ApiNode[] }).nodes[0]!.state, 'draining');
    } finally {
      await runCliInProcess(['undrain'], t.env);
    }
  });
});
