import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { baseEnv, CliProcess, LAUNCHER } from '../cli/cli-harness.ts';
import { trustServerCa } from '../helpers/trust-server.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

interface Where {
  url: string;
  adminTokenFile: string;
  caFile: string;
}

/** A real `jobworker serve` process on a fresh port; resolves once it says where it is. */
async function serve(dataDir: string): Promise<{ process: CliProcess; where: Where }> {
  const process = new CliProcess(
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--json'],
    baseEnv(),
    LAUNCHER,
  );
  const ready = await process.waitUntil((stdout) => {
    try {
      JSON.parse(stdout);
      return true;
    } catch {
      return false;
    }
  }, 'its address as JSON');
  const where = JSON.parse(ready) as Where;
  trustServerCa(where.caFile);
  return { process, where };
}

describe('webhook delivery across a server killed with SIGKILL', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  it('delivers the job:finished of a job that ended before the kill, once the server is back', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-hook-kill-'));
    dirs.push(dataDir);
    const receiver = await WebhookReceiver.open();
    // The first attempt gets no answer: the server dies with it in flight, unrecorded.
    receiver.answers = ['hang'];
    let second: CliProcess | undefined;
    const first = await serve(dataDir);
    try {
      const token = (await readFile(first.where.adminTokenFile, 'utf8')).trim();
      const auth = { authorization: `Bearer ${token}` };
      const res = await fetch(`${first.where.url}/v1/jobs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({
          command: 'sh',
          args: ['-c', 'exit 7'],
          notify: { url: receiver.url('/kill') },
        }),
      });
      assert.equal(res.status, 201);
      const job = (await res.json()) as { id: string };
      const inFlight = await receiver.nth(1);
      assert.equal(inFlight.headers['jobworker-event'], 'job:finished');

      first.process.child.kill('SIGKILL');
      const killed = await first.process.result();
      assert.equal(killed.signal, 'SIGKILL');

      const restarted = await serve(dataDir);
      second = restarted.process;
      const again = await receiver.nth(2);
      assert.equal(
        again.headers['jobworker-delivery'],
        inFlight.headers['jobworker-delivery'],
        'same idempotency id',
      );
      assert.equal(again.body, inFlight.body);
      const body = JSON.parse(again.body) as { job: { id: string; status: string; exitCode: number } };
      assert.deepEqual([body.job.id, body.job.status, body.job.exitCode], [job.id, 'failed', 7]);

      const listed = await fetch(`${restarted.where.url}/v1/webhooks/deliveries?jobId=${job.id}`, {
        headers: auth,
      });
      const { deliveries } = (await listed.json()) as {
        deliveries: { status: string; attempts: number; lastStatus: number | null }[];
      };
      // The attempt cut by the kill was never recorded; the one after the restart was.
      assert.deepEqual(
        deliveries.map((d) => [d.status, d.attempts, d.lastStatus]),
        [['delivered', 1, 200]],
      );
    } finally {
      if (first.process.child.exitCode === null && first.process.child.signalCode === null) {
        first.process.child.kill('SIGKILL');
      }
      if (second) {
        second.child.kill('SIGTERM');
        const closed = await second.result();
        assert.equal(closed.code, 0, closed.stderr);
      }
      await receiver.close();
    }
  });
});
