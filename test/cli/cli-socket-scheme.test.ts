import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/auth/tls/certificate-authority.ts';
import { runServer } from '../../src/main.ts';
import { testServerOptions } from '../api/api-harness.ts';
import { baseEnv, CliProcess, quiet } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

/**
 * The CLI on the server's machine reaches it through the socket in its data directory, and must
 * speak what that socket speaks: TLS on `server.sock`, plain HTTP on `server-http.sock`
 * (`serve --insecure-http`), whatever else is in the directory; and over TLS it must take the
 * server's certificate, the operator's (`--tls-cert`) included, since the socket's place already
 * proves who serves it.
 */
describe("the CLI speaks what the server's socket speaks", () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'jw-sock-scheme-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  it('a data directory served with TLS, its server killed, then served with --insecure-http: local commands speak plain HTTP', async () => {
    const dataDir = join(work, 'tls-then-plain');
    const env = baseEnv({ JOBWORKER_DATA_DIR: dataDir });
    // A real server process with TLS, the default: it makes tls/ca.pem, which stays.
    const serve = new CliProcess(
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--json'],
      baseEnv(),
    );
    const where = JSON.parse(
      await serve.waitUntil((stdout) => stdout.endsWith('}\n'), 'its address as JSON'),
    ) as { url: string; socketPath: string };
    assert.match(where.url, /^https:/);
    assert.equal(where.socketPath, join(dataDir, 'server.sock'));
    await stat(join(dataDir, 'tls', 'ca.pem'));
    const overTls = await runCliInProcess(['--json', 'list'], env);
    assert.equal(overTls.code, 0, overTls.stderr);

    // Killed, it leaves its socket: a stale one, which the CLI finds refusing, not misleading.
    serve.child.kill('SIGKILL');
    await serve.result();
    assert.ok((await lstat(where.socketPath)).isSocket(), 'the stale socket is there');
    const stale = await runCliInProcess(['--json', 'list'], env);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /server\.sock: connection refused \(is `jobworker serve` running\?\)/);

    const plain = await runServer({
      ...(await testServerOptions()),
      listen: '127.0.0.1:0',
      dataDir,
      insecureHttp: true,
      logStream: quiet(),
    });
    try {
      await stat(join(dataDir, 'tls', 'ca.pem'));
      const started = await runCliInProcess(['--json', 'start', '--', 'echo', 'over plain HTTP'], env);
      assert.equal(started.code, 0, started.stderr);
      const { id } = JSON.parse(started.stdout) as { id: string };
      const logs = await runCliInProcess(['logs', '-f', id], env);
      assert.equal(logs.code, 0, logs.stderr);
      assert.equal(logs.stdout, 'over plain HTTP\n');
      assert.equal(plain.socketPath, join(dataDir, 'server-http.sock'));
      await assert.rejects(lstat(where.socketPath), { code: 'ENOENT' }, 'the stale TLS socket is gone');
    } finally {
      await plain.close();
    }
    await assert.rejects(lstat(plain.socketPath), { code: 'ENOENT' }, 'the socket goes with its server');
  });

  it("a server with the operator's certificate (--tls-cert): local commands reach it over its socket, and a client certificate there still names its user", async () => {
    const dir = join(work, 'operator');
    const dataDir = join(dir, 'data');
    await mkdir(dir);
    // The operator's own CA and certificate, for a name that is not `localhost`.
    const { ca } = await CertificateAuthority.create('operator CA', new Date(), 30);
    const own = await ca.issueServer(['jobs.example.test'], new Date(), 30);
    await writeFile(join(dir, 'cert.pem'), own.certPem);
    await writeFile(join(dir, 'key.pem'), own.keyPem, { mode: 0o600 });
    const server = await runServer({
      ...(await testServerOptions()),
      listen: '127.0.0.1:0',
      dataDir,
      tlsCert: join(dir, 'cert.pem'),
      tlsKey: join(dir, 'key.pem'),
      logStream: quiet(),
    });
    try {
      assert.equal(server.socketPath, join(dataDir, 'server.sock'));
      const env = baseEnv({ JOBWORKER_DATA_DIR: dataDir });
      const listed = await runCliInProcess(['--json', 'list'], env);
      assert.equal(listed.code, 0, listed.stderr);

      // A viewer's client certificate (issued by the server's own CA, which client certificates
      // chain to) in ./cert: presented over the socket, it is who the CLI is, not the admin token.
      const added = await runCliInProcess(['user', 'add', 'vera', '--role', 'viewer'], env);
      assert.equal(added.code, 0, added.stderr);
      const issued = await runCliInProcess(
        ['certs', 'issue', '--user', 'vera', '--out', join(dir, 'cert')],
        env,
      );
      assert.equal(issued.code, 0, issued.stderr);
      const asVera = await runCliInProcess(['--debug', '--json', 'list'], env, { cwd: dir });
      assert.equal(asVera.code, 0, asVera.stderr);
      assert.match(asVera.stderr, /client certificate .*client-cert\.pem; token none/);
      const refused = await runCliInProcess(['start', '--', 'true'], env, { cwd: dir });
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /A viewer reads jobs and queues only: it may not start a job \(FORBIDDEN\)/,
      );
    } finally {
      await server.close();
    }
  });
});
