import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { baseEnv, CLI_MAIN, jobworker, startTestServer, type TestServer } from './cli-harness.ts';

const run = promisify(execFile);

describe('CLI over TLS: always verifies the server', () => {
  let t: TestServer;
  let work: string;
  before(async () => {
    t = await startTestServer();
    work = await mkdtemp(join(tmpdir(), 'jw-cli-tls-'));
  });
  after(async () => {
    await t.close();
    await rm(work, { recursive: true, force: true });
  });

  it('verifies with --ca FILE', async () => {
    const env = baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_TOKEN: t.token });
    const res = await jobworker(['list', '--ca', t.server.caFile!], env);
    assert.equal(res.code, 0, res.stderr);
  });

  it("verifies with the local server's CA in its data directory, over TCP and over its socket", async () => {
    const overTcp = await jobworker(
      ['list'],
      baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_TOKEN: t.token, JOBWORKER_DATA_DIR: t.dataDir }),
    );
    assert.equal(overTcp.code, 0, overTcp.stderr);
    // No URL, no token: the socket in the data directory, over TLS, with the admin token there.
    const overSocket = await jobworker(['start', '--', 'true'], baseEnv({ JOBWORKER_DATA_DIR: t.dataDir }));
    assert.equal(overSocket.code, 0, overSocket.stderr);
  });

  it('refuses a server it cannot verify, naming the CA it used and how to pass another', async () => {
    const env = baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_TOKEN: t.token, JOBWORKER_DATA_DIR: work });
    const res = await jobworker(['list'], env);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /Cannot verify the server at https:\/\/127\.0\.0\.1:\d+: SELF_SIGNED_CERT_IN_CHAIN/,
    );
    assert.match(res.stderr, /system's CAs.*--ca FILE or JOBWORKER_CA/);
    const wrong = await jobworker(['list', '--ca', join(work, 'nope.pem')], env);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /Cannot read --ca .*nope\.pem: ENOENT/);
  });

  it('issues a client certificate (certs issue) that the CLI then uses from ./cert/ without a token', async () => {
    const out = join(work, 'cert');
    const issued = await jobworker(['certs', 'issue', '--user', 'admin', '--out', out, '--days', '2'], t.env);
    assert.equal(issued.code, 0, issued.stderr);
    assert.match(issued.stdout, /Issued certificate [0-9a-f]+ for admin/);
    assert.equal((await stat(join(out, 'client-key.pem'))).mode & 0o777, 0o600);
    await stat(join(out, 'client-cert.pem'));
    await stat(join(out, 'ca-cert.pem'));

    // The Job Worker design's defaults: ./cert/client-cert.pem, client-key.pem and ca-cert.pem.
    const { stdout } = await run(process.execPath, [CLI_MAIN, '--json', 'list'], {
      cwd: work,
      env: baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_DATA_DIR: join(work, 'no-data-dir') }),
    });
    assert.ok(Array.isArray((JSON.parse(stdout) as { jobs: unknown[] }).jobs));

    // A ./cert that others may write is not the caller's own: its CA is not trusted, nor its key used.
    await chmod(out, 0o777);
    await assert.rejects(
      run(process.execPath, [CLI_MAIN, 'list'], {
        cwd: work,
        env: baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_DATA_DIR: join(work, 'no-data-dir') }),
      }),
      /Cannot verify the server/,
    );
    await chmod(out, 0o755);

    const listed = await jobworker(['certs', 'list', '--json'], t.env);
    const certs = (JSON.parse(listed.stdout) as { certificates: { serial: string; user: string }[] })
      .certificates;
    assert.equal(certs.length, 1);
    const revoked = await jobworker(['certs', 'revoke', '--cert', join(out, 'client-cert.pem')], t.env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`Revoked certificate ${certs[0]!.serial} of admin`));
    await assert.rejects(
      run(process.execPath, [CLI_MAIN, 'list'], {
        cwd: work,
        env: baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_DATA_DIR: join(work, 'no-data-dir') }),
      }),
      /Lost the connection|Cannot talk to the server/,
    );
  });

  it('certs issue: asks for nothing when it cannot write the files, and makes the key 0600 whatever was there', async () => {
    const count = async () =>
      (
        JSON.parse((await jobworker(['certs', 'list', '--json'], t.env)).stdout) as {
          certificates: unknown[];
        }
      ).certificates.length;
    const before = await count();
    const file = join(work, 'not-a-dir');
    await writeFile(file, 'x');
    const refused = await jobworker(['certs', 'issue', '--user', 'admin', '--out', file], t.env);
    assert.notEqual(refused.code, 0);
    assert.equal(await count(), before, 'no certificate issued whose key could not be kept');

    // A key file left readable by others, and a link planted where the certificate goes.
    const out = join(work, 'again');
    await mkdir(out, { mode: 0o700 });
    await writeFile(join(out, 'client-key.pem'), 'old key', { mode: 0o644 });
    const elsewhere = join(work, 'elsewhere.pem');
    await writeFile(elsewhere, 'not to be written');
    await symlink(elsewhere, join(out, 'client-cert.pem'));
    const issued = await jobworker(['certs', 'issue', '--user', 'admin', '--out', out], t.env);
    assert.equal(issued.code, 0, issued.stderr);
    assert.equal((await stat(join(out, 'client-key.pem'))).mode & 0o777, 0o600);
    assert.match(await readFile(join(out, 'client-key.pem'), 'utf8'), /PRIVATE KEY/);
    assert.equal(
      await readFile(elsewhere, 'utf8'),
      'not to be written',
      'the link was replaced, not followed',
    );
    assert.ok(!(await lstat(join(out, 'client-cert.pem'))).isSymbolicLink());
    assert.deepEqual((await readdir(out)).sort(), ['ca-cert.pem', 'client-cert.pem', 'client-key.pem']);
    assert.equal(await count(), before + 1);
  });

  it("certs revoke: the program's --cert and --key authenticate it; its own --cert is the one revoked", async () => {
    const admin = join(work, 'revoking-admin');
    const victim = join(work, 'revoked-user');
    const added = await jobworker(['user', 'add', 'cert-revokee', '--role', 'user'], t.env);
    assert.equal(added.code, 0, added.stderr);
    for (const [user, out] of [
      ['admin', admin],
      ['cert-revokee', victim],
      ['cert-revokee', `${victim}-2`],
    ] as const) {
      const issued = await jobworker(['certs', 'issue', '--user', user, '--out', out], t.env);
      assert.equal(issued.code, 0, issued.stderr);
    }
    // No token: the admin's certificate is the only credential, given before the command.
    const env = baseEnv({ JOBWORKER_URL: t.server.url, JOBWORKER_CA: t.server.caFile! });
    const asAdmin = ['--cert', join(admin, 'client-cert.pem'), '--key', join(admin, 'client-key.pem')];
    const byFile = await jobworker(
      [...asAdmin, 'certs', 'revoke', '--cert', join(victim, 'client-cert.pem'), '--json'],
      env,
    );
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.equal((JSON.parse(byFile.stdout) as { user: string }).user, 'cert-revokee');

    const serial = new X509Certificate(await readFile(join(`${victim}-2`, 'client-cert.pem'))).serialNumber;
    const bySerial = await jobworker([...asAdmin, 'certs', 'revoke', '--serial', serial], env);
    assert.equal(bySerial.code, 0, bySerial.stderr);
    assert.match(bySerial.stdout, /^Revoked certificate [0-9A-Fa-f]+ of cert-revokee\n$/);
  });

  it('needs --key with --cert', async () => {
    await mkdir(join(work, 'x'), { recursive: true });
    const res = await jobworker(['list', '--cert', join(work, 'cert', 'client-cert.pem')], t.env);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /Expected --key \(or JOBWORKER_KEY\) with --cert/);
  });
});
