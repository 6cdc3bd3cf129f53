import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
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

  it('gives each cut of a quiet follow the whole --reconnect-for again, not the rest of the first', async () => {
    // A proxy with an idle timeout: it answers, holds the quiet stream, then cuts it, each time.
    const head =
      'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.jobworker.output-frames\r\n' +
      'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    let connections = 0;
    let fourth!: () => void;
    const gotFourth = new Promise<void>((resolve) => {
      fourth = resolve;
    });
    const sockets = new Set<Socket>();
    const proxy = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      if (++connections === 4) fourth();
      socket.once('data', () => {
        socket.write(head);
        // The proxy's idle timeout: longer than half of --reconnect-for (by 300 ms, room for a
        // slow host to read the head late), shorter than all of it.
        const cut = setTimeout(() => socket.destroy(), 800);
        socket.once('close', () => clearTimeout(cut));
      });
    }).listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    const abort = new AbortController();
    try {
      const events = readOutputEvents(
        client(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}/`),
        '01900000-0000-7000-8000-000000000000',
        { view: 'all', follow: true, reconnectForMs: 1000, signal: abort.signal },
      );
      const next = events.next();
      next.catch(() => undefined);
      // Before: the third cut came 1.6 s into the first outage, past the 1 s, and it gave up.
      const outcome = await Promise.race([
        gotFourth.then(() => 'reconnecting still'),
        next.then(
          () => 'an event',
          (error: Error) => error.message,
        ),
      ]);
      assert.equal(outcome, 'reconnecting still');
      abort.abort();
      await assert.rejects(next, { name: 'AbortError' });
    } finally {
      abort.abort();
      proxy.close();
      for (const socket of sockets) socket.destroy();
    }
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

  it('start -f with a bad JOBWORKER_RECONNECT_FOR starts nothing; logs without -f does not read it', async () => {
    const t = await startTestServer();
    try {
      const env = { ...t.env, JOBWORKER_RECONNECT_FOR: 'forever' };
      const refused = await runCliInProcess(['start', '-f', '--name', 'never-made', '--', 'true'], env);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /JOBWORKER_RECONNECT_FOR: Expected a duration/);
      const listed = await runCliInProcess(['list', '--json', '--name', 'never-made'], t.env);
      assert.deepEqual(JSON.parse(listed.stdout).jobs, [], 'the usage error came before the job');
      // Followed to its end (so it has ended) with the setting unset.
      const followed = await runCliInProcess(['start', '--json', '-f', '--', 'echo', 'hi'], t.env);
      assert.equal(followed.code, 0, followed.stderr);
      const { job } = JSON.parse(followed.stdout) as { job: { id: string } };
      const logs = await runCliInProcess(['logs', job.id], env);
      assert.deepEqual([logs.code, logs.stdout], [0, 'hi\n']);
    } finally {
      await t.close();
    }
  });
});
