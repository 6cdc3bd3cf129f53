import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { readCliEnvironment } from '../../src/cli/cli-env.ts';
import { EXIT } from '../../src/cli/errors.ts';
import { runCli } from '../../src/cli/program.ts';
import { runServer } from '../../src/main.ts';
import { baseEnv, startTestServer, type TestServer } from './cli-harness.ts';

/** Runs the CLI in this process with `env` as its whole environment. */
async function cli(args: readonly string[], env: NodeJS.ProcessEnv, cwd = tmpdir()) {
  let stdout = '';
  let stderr = '';
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk, _encoding, callback) {
        append(String(chunk));
        callback();
      },
    });
  const ctx = {
    env: readCliEnvironment(env),
    stdout: sink((text) => {
      stdout += text;
    }),
    stderr: sink((text) => {
      stderr += text;
    }),
    cwd,
    exitCode: EXIT.ok,
  };
  const code = await runCli(args, ctx);
  return { code, stdout, stderr };
}

let t: TestServer;
/** A stranger's HTTP server on a loopback port: it records what it is sent and refuses it all. */
const received: IncomingHttpHeaders[] = [];
const stranger = createServer((req, res) => {
  received.push(req.headers);
  req.resume();
  res.writeHead(401, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { code: 'UNAUTHENTICATED', message: 'Invalid token' } }));
});
let strangerUrl: string;

before(async () => {
  t = await startTestServer();
  stranger.listen(0, '127.0.0.1');
  await once(stranger, 'listening');
  strangerUrl = `http://127.0.0.1:${(stranger.address() as AddressInfo).port}`;
});
after(async () => {
  stranger.closeAllConnections();
  stranger.close();
  await t.close();
});

describe("the CLI and a local server's admin token", () => {
  it('defect 11: a stranger listening on a loopback port never receives the admin token from the CLI', async () => {
    const env = baseEnv({ JOBWORKER_DATA_DIR: t.dataDir });
    const localhost = strangerUrl.replace('127.0.0.1', 'localhost');
    const runs = [
      await cli(['--server', strangerUrl, 'list'], env),
      await cli(['status', '--server', localhost, '01a23560-0000-7000-8000-000000000000'], env),
      await cli(['start', '--server', strangerUrl, '--', 'true'], env),
      await cli(['logs', '01a23560-0000-7000-8000-000000000000'], { ...env, JOBWORKER_URL: strangerUrl }),
      await cli(['list'], { ...env, JOBWORKER_URL: localhost }),
    ];
    assert.equal(received.length, runs.length, 'every command went to the stranger');
    for (const headers of received) {
      assert.equal(headers.authorization, undefined);
      assert.ok(!JSON.stringify(headers).includes(t.token), 'the admin token is nowhere in the request');
    }
    for (const run of runs) {
      assert.equal(run.code, 1);
      assert.match(run.stderr, /no token: set JOBWORKER_TOKEN/, 'the error says how to pass a token');
    }
  });

  it('defect 11: with no --server or JOBWORKER_URL, the CLI talks to the server through its socket in the data directory', async () => {
    const before = received.length;
    const env = baseEnv({ JOBWORKER_DATA_DIR: t.dataDir });
    const started = await cli(['--json', 'start', '--', 'echo', 'over the socket'], env);
    assert.equal(started.code, 0, started.stderr);
    const { id } = JSON.parse(started.stdout) as { id: string };
    const logs = await cli(['logs', '-f', id], env);
    assert.equal(logs.stdout, 'over the socket\n');
    assert.equal(received.length, before, 'nothing went to a TCP port');

    assert.equal(t.server.socketPath, join(t.dataDir, 'server.sock'));
    const socket = await lstat(t.server.socketPath!);
    assert.ok(socket.isSocket());
    assert.equal((socket.mode & 0o777).toString(8), '600');
  });

  it('sends the admin token over a plain socket even from a directory with a client certificate (./cert), which it cannot present', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-cli-cert-cwd-'));
    const dataDir = join(dir, 'data');
    const plain = await runServer({
      listen: '127.0.0.1:0',
      dataDir,
      insecureHttp: true,
      logStream: new PassThrough(),
    });
    try {
      await mkdir(join(dir, 'cert'));
      await promisify(execFile)('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=someone',
        '-keyout',
        join(dir, 'cert', 'client-key.pem'),
        '-out',
        join(dir, 'cert', 'client-cert.pem'),
      ]);
      const env = baseEnv({ JOBWORKER_DATA_DIR: dataDir });
      const listed = await cli(['--json', 'list', '--limit', '1'], env, dir);
      assert.equal(listed.code, 0, listed.stderr);
    } finally {
      await plain.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a stale socket left by a server that died is replaced; the socket goes when the server closes', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-sock-'));
    try {
      const path = join(dataDir, 'server.sock');
      // A process that dies by SIGKILL leaves its socket file behind.
      const holder = spawn(
        process.execPath,
        ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await once(holder.stdout!, 'data');
      holder.kill('SIGKILL');
      await once(holder, 'exit');
      assert.ok((await lstat(path)).isSocket(), 'the stale socket is there');

      const server = await runServer({ listen: '127.0.0.1:0', dataDir, logLevel: 'silent' });
      try {
        const listed = await cli(['--json', 'list'], baseEnv({ JOBWORKER_DATA_DIR: dataDir }));
        assert.equal(listed.code, 0, listed.stderr);
        assert.deepEqual((JSON.parse(listed.stdout) as { jobs: unknown[] }).jobs, []);
      } finally {
        await server.close();
      }
      await assert.rejects(lstat(path), { code: 'ENOENT' });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
