import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NO_TLS } from '../../src/cli/connection.ts';
import { ApiClient } from '../../src/client/api-client.ts';
import { readOutputEvents } from '../../src/client/output-events.ts';
import { trustServerCa } from '../helpers/trust-server.ts';
import { killProcessGroup } from '../helpers/wait.ts';
import { baseEnv, CliProcess, startTestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

/** `jobworker serve` as a real process; resolves once it printed where it listens. */
async function serve(dataDir: string, listen: string): Promise<{ process: CliProcess; url: string }> {
  const server = new CliProcess(['serve', '--json', '--listen', listen, '--data-dir', dataDir], baseEnv());
  const doc = await server.waitUntil((out) => out.trimEnd().endsWith('}'), 'where it listens');
  const where = JSON.parse(doc) as { url: string; caFile: string | null };
  trustServerCa(where.caFile);
  return { process: server, url: where.url };
}

/** The numbers the job prints must run 1, 2, 3... with nothing missing or repeated. */
function assertConsecutive(text: string): void {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a whole line');
  assert.equal(lines.pop(), 'done');
  for (const [i, line] of lines.entries()) assert.equal(line, String(i + 1), `line ${i + 1}`);
}

describe('defect 20: logs -f across a server restart', () => {
  it('defect 20: logs -f keeps reconnecting through a restart longer than 6 attempts and prints the output exactly once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-restart-'));
    const go = join(dataDir, 'go');
    let server = await serve(dataDir, '127.0.0.1:0');
    const { port } = new URL(server.url);
    const token = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    let follower: CliProcess | undefined;
    let jobPid: number | null = null;
    const cutter = createServer((socket) => {
      socket.resetAndDestroy();
      count++;
      attempts.emit('attempt', count);
    });
    const attempts = new EventEmitter();
    let count = 0;
    try {
      // Prints 1, 2, 3... until the test creates `go`, then `done`.
      const script = 'i=0; while [ ! -e "$1" ]; do i=$((i+1)); echo $i; sleep 0.01; done; echo done';
      const created = await fetch(`${server.url}/v1/jobs`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ command: 'sh', args: ['-c', script, 'sh', go] }),
      });
      const job = (await created.json()) as { id: string };
      assert.equal(created.status, 201, JSON.stringify(job));
      follower = new CliProcess(
        ['logs', '-f', job.id],
        baseEnv({
          JOBWORKER_URL: server.url,
          JOBWORKER_TOKEN: token,
          JOBWORKER_CA: join(dataDir, 'tls', 'ca.pem'),
        }),
      );
      await follower.waitForStdout('\n20\n');
      // The submission answered before the start (no pid); the follow shows it is on record now.
      const running = await fetch(`${server.url}/v1/jobs/${job.id}`, { headers: auth });
      jobPid = ((await running.json()) as { pid: number | null }).pid;
      assert.ok(jobPid !== null, 'the running job has its pid on record');

      // The server stops; while it is down, whatever answers on its port cuts every connection
      // (a server still starting, a proxy in front of it), and the test counts the attempts.
      server.process.child.kill('SIGTERM');
      assert.equal((await server.process.result()).code, 0);
      cutter.listen(Number(port), '127.0.0.1');
      await once(cutter, 'listening');
      const eightAttempts = (async () => {
        while (count < 8) await once(attempts, 'attempt');
      })();
      const gaveUp = follower.result().then((r) => r);
      const first = await Promise.race([eightAttempts.then(() => null), gaveUp]);
      assert.equal(first, null, `the follower gave up during the restart: ${JSON.stringify(first)}`);
      cutter.close();
      await once(cutter, 'close');

      // The same port and data directory: the new server adopts the job, the follower resumes.
      server = await serve(dataDir, `127.0.0.1:${port}`);
      await writeFile(go, '');
      const result = await follower.result();
      assert.equal(result.code, 0, result.stderr);
      const written = await readFile(join(dataDir, 'jobs', job.id, 'stdout'), 'utf8');
      assert.equal(result.stdout, written, 'exactly the bytes the job wrote: no gap, no duplicate');
      assertConsecutive(result.stdout);
      jobPid = null;
    } finally {
      if (cutter.listening) cutter.close();
      follower?.child.kill('SIGKILL');
      if (jobPid !== null) killProcessGroup(jobPid);
      server.process.child.kill('SIGTERM');
      await server.process.result();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10 });
    }
  });
});

describe('how long a follower keeps reconnecting', () => {
  const client = (url: string, token: string | null = null) =>
    new ApiClient({
      baseUrl: new URL(url),
      socketPath: null,
      local: true,
      token,
      tokenSource: 'none',
      tokenFile: '/nonexistent/admin.token',
      tls: NO_TLS,
    });

  it('gives up once --reconnect-for has passed with the server unreachable, saying how long it tried', async () => {
    // A port that refuses: bound, then closed.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as AddressInfo;
    probe.close();
    await once(probe, 'close');
    const retries: number[] = [];
    const events = readOutputEvents(
      client(`http://127.0.0.1:${port}/`),
      '01900000-0000-7000-8000-000000000000',
      {
        view: 'all',
        follow: true,
        reconnectForMs: 300,
        onRetry: (attempt) => retries.push(attempt),
      },
    );
    await assert.rejects(events.next(), (error: Error) => {
      assert.match(
        error.message,
        /^Cannot reach the server .* \(gave up after reconnecting for \S+, \d+ attempts; --reconnect-for sets how long\)$/,
      );
      return true;
    });
    assert.ok(retries.length >= 1, 'it did reconnect before giving up');
  });

  it('a job that is gone (404) ends the follow at once, without reconnecting', async () => {
    const t = await startTestServer();
    try {
      const retries: number[] = [];
      const events = readOutputEvents(
        client(`${t.server.url}/`, t.token),
        '01900000-0000-7000-8000-000000000000',
        {
          view: 'all',
          follow: true,
          onRetry: (attempt) => retries.push(attempt),
        },
      );
      await assert.rejects(events.next(), { status: 404, code: 'NOT_FOUND' });
      assert.deepEqual(retries, []);
    } finally {
      await t.close();
    }
  });

  it('JOBWORKER_RECONNECT_FOR is checked like --reconnect-for', async () => {
    const result = await runCliInProcess(
      ['logs', '-f', '01900000-0000-7000-8000-000000000000'],
      baseEnv({ JOBWORKER_URL: 'http://127.0.0.1:9/', JOBWORKER_RECONNECT_FOR: 'forever' }),
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^jobworker: JOBWORKER_RECONNECT_FOR: Expected a duration/);
  });
});
