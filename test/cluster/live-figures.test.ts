import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';
import { type TestCluster, type TestNode, testCluster } from './cluster-harness.ts';

interface JobJson {
  id: string;
  status: string;
  node: string;
  outputBytes: { stdout: number; stderr: number };
  usage: { cpuSeconds: number | null } | null;
}

/**
 * "Any node answers for any job" (docs/cluster.md), yet a node asked about a job another node
 * runs read its output sizes from its own disk, where the job has no files: `GET /v1/jobs/{id}`,
 * RPC `Get`, `status` and the dashboard said `stdout 0 B` and no usage, depending on the node that
 * answered. The node that runs it is asked now.
 */
describe('live figures of a job running on another node', () => {
  let db: TestDatabase;
  let cluster: TestCluster;
  let runs: TestNode;
  let asked: TestNode;
  before(async () => {
    db = await createTestDatabase('livefigures');
    cluster = await testCluster(db.url);
    runs = await cluster.start('runs');
    asked = await cluster.start('asked');
    // Only `runs` starts jobs: what `asked` is asked about runs elsewhere.
    assert.equal((await asked.api('POST', '/v1/drain', {})).status, 200);
  });
  after(async () => {
    await cluster?.close();
    await db?.drop();
  });

  const get = async (node: TestNode, id: string) => {
    const { status, body } = await node.api<JobJson>('GET', `/v1/jobs/${id}`);
    assert.equal(status, 200, JSON.stringify(body));
    return body;
  };

  it("are the running node's: the same output sizes and usage from either node", async () => {
    const { status, body } = await asked.api<JobJson>('POST', '/v1/jobs', {
      command: 'sh',
      args: ['-c', 'head -c 100000 /dev/zero; head -c 777 /dev/zero >&2; exec sleep 600'],
      cwd: '/',
    });
    assert.equal(status, 201, JSON.stringify(body));
    try {
      let own: JobJson | undefined;
      await until(
        'the job to run and write',
        async () => {
          own = await get(runs, body.id);
          return (
            own.status === 'running' && own.outputBytes.stdout === 100_000 && own.outputBytes.stderr === 777
          );
        },
        60_000,
      );
      assert.equal(own?.node, 'runs');
      const elsewhere = await get(asked, body.id);
      assert.equal(elsewhere.node, 'runs');
      assert.deepEqual(elsewhere.outputBytes, { stdout: 100_000, stderr: 777 });
      // Usage is what the running node's cgroups say (null on a host that measures none).
      assert.equal(elsewhere.usage === null, own?.usage === null);
    } finally {
      await runs.api('POST', `/v1/jobs/${body.id}/stop`, { graceMs: 0 });
    }
  });
});
