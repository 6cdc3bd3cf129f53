import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type ClientHttp2Session, connect as http2Connect } from 'node:http2';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { CertificateAuthority, latestIssueOf } from '../../src/auth/tls/certificate-authority.ts';
import { IssuedCertificates } from '../../src/auth/tls/issued-certificates.ts';
import {
  ensureServerCertificate,
  openCertificateAuthority,
  serverNames,
} from '../../src/auth/tls/tls-files.ts';
import { runServer } from '../../src/main.ts';
import { type ApiHarness, addUserToken, openApi } from '../api/api-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { until } from '../helpers/wait.ts';

const DAY_MS = 86_400_000;
const execFileAsync = promisify(execFile);

interface ClientPems {
  cert: string;
  key: string;
}

/** GET with a client certificate over HTTP/1.1; rejects when the connection is refused or cut. */
function getWithCert(
  url: string,
  ca: string,
  client: ClientPems,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { ca, cert: client.cert, key: client.key, agent: false, headers },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** GET through a keep-alive agent: the status, and the socket the agent keeps open after it. */
function getKeptAlive(url: string, agent: HttpsAgent): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { agent }, (res) => {
      const socket = res.socket;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, socket }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET over an open HTTP/2 session; rejects when the session is closed or the stream fails. */
function getOnSession(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path });
    stream.on('response', (headers) => {
      stream.resume();
      stream.on('end', () => resolve(Number(headers[':status'])));
    });
    stream.on('error', reject);
    stream.end();
  });
}

/** The serial of the certificate the server presents now. */
async function servedSerial(url: string, ca: string): Promise<string> {
  const { hostname: host, port } = new URL(url);
  const socket = tlsConnect({ host, port: Number(port), ca, servername: 'localhost' });
  await once(socket, 'secureConnect');
  const serial = socket.getPeerX509Certificate()!.serialNumber;
  socket.destroy();
  return serial;
}

describe('TLS certificates: the server CA, its certificate, renewal', () => {
  it('creates the CA and server certificate once (0700 dir, 0600 keys) and keeps them across restarts', async () => {
    const h = await openApi();
    try {
      const dir = join(h.dataDir, 'tls');
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.equal((await stat(join(dir, 'ca-key.pem'))).mode & 0o777, 0o600);
      assert.equal((await stat(join(dir, 'server-key.pem'))).mode & 0o777, 0o600);
      const before = await Promise.all(
        ['ca.pem', 'server-cert.pem'].map((f) => readFile(join(dir, f), 'utf8')),
      );
      await h.restart();
      const afterRestart = await Promise.all(
        ['ca.pem', 'server-cert.pem'].map((f) => readFile(join(dir, f), 'utf8')),
      );
      assert.deepEqual(afterRestart, before);

      const ca = new X509Certificate(before[0]!);
      const cert = new X509Certificate(before[1]!);
      assert.equal(ca.ca, true);
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
      assert.match(ca.publicKey.asymmetricKeyType ?? '', /^ec$/);
      for (const name of ['localhost', hostname()]) assert.ok(cert.checkHost(name), name);
      for (const ip of ['127.0.0.1', '::1']) assert.ok(cert.checkIP(ip), ip);
    } finally {
      await h.destroy();
    }
  });

  it('issues a new server certificate when the listen host is not among its names', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-tls-'));
    try {
      const now = new Date();
      const ca = await openCertificateAuthority(dataDir, now);
      const first = await ensureServerCertificate(dataDir, ca, serverNames('127.0.0.1'), now);
      const same = await ensureServerCertificate(dataDir, ca, serverNames('127.0.0.1'), now);
      assert.equal(same.fresh, false);
      assert.equal(same.certPem, first.certPem);
      const moved = await ensureServerCertificate(dataDir, ca, serverNames('10.11.12.13'), now);
      assert.equal(moved.fresh, true);
      assert.ok(new X509Certificate(moved.certPem).checkIP('10.11.12.13'));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('renews the server certificate in its renewal window while running, and serves the new one', async () => {
    // Starts in the past, so that once moved on it is now again and every certificate verifies.
    const clock = new ManualClock(new Date(Date.now() - 61 * DAY_MS));
    const h = await openApi(undefined, { clock });
    try {
      const ca = await readFile(h.server.caFile!, 'utf8');
      const first = await servedSerial(h.server.url, ca);
      clock.advance(61 * DAY_MS); // past two thirds of 90 days
      await h.logged(/server certificate renewed/);
      const second = await servedSerial(h.server.url, ca);
      assert.notEqual(second, first);
      assert.equal(
        new X509Certificate(await readFile(join(h.dataDir, 'tls', 'server-cert.pem'))).serialNumber,
        second,
      );
    } finally {
      await h.destroy();
    }
  });

  it('reads a stored CA back without loading what signs, which comes at its first signature', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-tls-'));
    try {
      const now = new Date();
      const made = await openCertificateAuthority(dataDir, now);
      await ensureServerCertificate(dataDir, made, serverNames('127.0.0.1'), now);
      // In a process of its own, which records every module it resolves: a start finds the CA and
      // a current server certificate, and signs nothing.
      const tlsFiles = new URL('../../src/auth/tls/tls-files.ts', import.meta.url).href;
      const script = `
        import { registerHooks } from 'node:module';
        const seen = [];
        registerHooks({ resolve: (specifier, context, next) => { const r = next(specifier, context); seen.push(r.url); return r; } });
        const signing = () => seen.some((url) => url.includes('ca-signer') || url.includes('@peculiar'));
        const { ensureServerCertificate, openCertificateAuthority, serverNames } = await import(${JSON.stringify(tlsFiles)});
        const ca = await openCertificateAuthority(process.argv[1], new Date());
        const material = await ensureServerCertificate(process.argv[1], ca, serverNames('127.0.0.1'), new Date());
        const atStart = signing();
        const pair = await ca.issueClient('ann', new Date(), 1);
        console.log(JSON.stringify({ atStart, fresh: material.fresh, afterSigning: signing(), certPem: pair.certPem }));
      `;
      const { stdout } = await execFileAsync(process.execPath, [
        '--input-type=module',
        '-e',
        script,
        dataDir,
      ]);
      const seen = JSON.parse(stdout) as {
        atStart: boolean;
        fresh: boolean;
        afterSigning: boolean;
        certPem: string;
      };
      assert.deepEqual(
        { atStart: seen.atStart, fresh: seen.fresh, afterSigning: seen.afterSigning },
        { atStart: false, fresh: false, afterSigning: true },
      );
      // Signed with the stored key: it verifies against the CA that was made.
      const issued = new X509Certificate(seen.certPem);
      const caCert = new X509Certificate(made.certPem);
      assert.ok(issued.checkIssued(caCert) && issued.verify(caCert.publicKey));

      const loaded = await openCertificateAuthority(dataDir, now);
      assert.equal(loaded.certPem, made.certPem);
      assert.equal(loaded.notAfter.getTime(), made.notAfter.getTime());
      const crl = await loaded.revocationList([{ serial: issued.serialNumber, revokedAt: now }], now, 1);
      assert.match(crl, /^-----BEGIN X509 CRL-----/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("refuses at load a CA whose key is not its certificate's, or whose certificate is not a CA's", async () => {
    const { ca } = await CertificateAuthority.create('test CA', new Date(), 30);
    const { ca: other, keyPem: otherKey } = await CertificateAuthority.create('other CA', new Date(), 30);
    await assert.rejects(
      CertificateAuthority.load(ca.certPem, otherKey),
      /CA key is not the key of the CA certificate/,
    );
    const server = await ca.issueServer(['localhost'], new Date(), 1);
    await assert.rejects(
      CertificateAuthority.load(server.certPem, server.keyPem),
      /is not a CA's certificate/,
    );
    await assert.rejects(CertificateAuthority.load('not a certificate\n', otherKey));
    assert.ok((await CertificateAuthority.load(other.certPem, otherKey)).notAfter > new Date());
    // Keys the signer could not use are refused at load, not at the first signature.
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    await assert.rejects(
      CertificateAuthority.load(ca.certPem, p384.export({ type: 'pkcs8', format: 'pem' }) as string),
      /must be an ECDSA P-256 key .*got an EC key on secp384r1/,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    await assert.rejects(
      CertificateAuthority.load(ca.certPem, rsa.export({ type: 'pkcs8', format: 'pem' }) as string),
      /must be an ECDSA P-256 key .*got a key of type rsa/,
    );
  });

  it('reads back a CA stored in other forms (SEC1 key, CRLF lines) as jobworker writes it, and signs with it', async () => {
    const { ca, keyPem } = await CertificateAuthority.create('test CA', new Date(), 30);
    const sec1 = createPrivateKey(keyPem).export({ type: 'sec1', format: 'pem' }) as string;
    assert.match(sec1, /BEGIN EC PRIVATE KEY/);
    const loaded = await CertificateAuthority.load(ca.certPem.replaceAll('\n', '\r\n'), sec1);
    assert.equal(loaded.certPem, ca.certPem);
    const pair = await loaded.issueClient('ann', new Date(), 1);
    const issued = new X509Certificate(pair.certPem);
    const caCert = new X509Certificate(ca.certPem);
    assert.ok(issued.checkIssued(caCert) && issued.verify(caCert.publicKey));
  });

  it('records a revocation only once its revocation list is written: a failed one can be tried again', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-tls-'));
    try {
      const clock = new ManualClock();
      const ca = await openCertificateAuthority(dataDir, clock.now());
      const issued = await IssuedCertificates.open(dataDir, ca, clock);
      const { record } = await issued.issue('ann', 1);
      // The list cannot be written: its name is taken by a directory.
      await rm(issued.crlPath);
      await mkdir(issued.crlPath);
      await assert.rejects(issued.revoke(record.serial));
      assert.equal(issued.list()[0]!.revokedAt, null, 'not recorded revoked');
      const stored = JSON.parse(await readFile(join(dataDir, 'tls', 'issued.json'), 'utf8'));
      assert.equal(stored.certificates[0].revokedAt, null);

      await rm(issued.crlPath, { recursive: true });
      const told: string[] = [];
      issued.onRevoked = (_crl, revoked) => told.push(revoked.serial);
      const revoked = await issued.revoke(record.serial);
      assert.ok(revoked.revokedAt);
      assert.deepEqual(told, [record.serial]);
      // The list names it: OpenSSL, which Node's TLS uses, reads it back.
      const { stdout } = await execFileAsync('openssl', ['crl', '-in', issued.crlPath, '-noout', '-text']);
      assert.match(stdout.toUpperCase(), new RegExp(`SERIAL NUMBER: ${record.serial.toUpperCase()}`));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('renews at start a certificate already in its renewal window', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-tls-'));
    try {
      const past = new Date(Date.now() - 70 * DAY_MS);
      const ca = await openCertificateAuthority(dataDir, past);
      const old = await ensureServerCertificate(dataDir, ca, serverNames('127.0.0.1'), past);
      const now = await ensureServerCertificate(dataDir, ca, serverNames('127.0.0.1'), new Date());
      assert.equal(now.fresh, true);
      assert.notEqual(now.certPem, old.certPem);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('TLS certificates: --tls-cert/--tls-key', () => {
  let dir: string;
  let own: { certPem: string; keyPem: string; caPem: string };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-own-'));
    const { ca } = await CertificateAuthority.create('operator CA', new Date(), 30);
    const pair = await ca.issueServer(['localhost', '127.0.0.1'], new Date(), 30);
    own = { certPem: pair.certPem, keyPem: pair.keyPem, caPem: ca.certPem };
    const other = await ca.issueServer(['localhost'], new Date(), 30);
    const expiredCa = (await CertificateAuthority.create('old CA', new Date(Date.now() - 400 * DAY_MS), 3650))
      .ca;
    const expired = await expiredCa.issueServer(['localhost'], new Date(Date.now() - 200 * DAY_MS), 90);
    await Promise.all([
      writeFile(join(dir, 'cert.pem'), pair.certPem),
      writeFile(join(dir, 'key.pem'), pair.keyPem),
      writeFile(join(dir, 'other-key.pem'), other.keyPem),
      writeFile(join(dir, 'garbage.pem'), 'not a certificate\n'),
      writeFile(join(dir, 'expired.pem'), expired.certPem),
      writeFile(join(dir, 'expired-key.pem'), expired.keyPem),
    ]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const refused = async (tlsCert: string, tlsKey: string, field: string, message: RegExp) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-own-data-'));
    try {
      await assert.rejects(
        runServer({ listen: '127.0.0.1:0', dataDir, tlsCert: join(dir, tlsCert), tlsKey: join(dir, tlsKey) }),
        (err: Error & { field?: string }) => {
          assert.equal(err.field, field);
          assert.match(err.message, message);
          return true;
        },
      );
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  };

  it('refuses to start with a bad PEM, a key of another certificate, or an expired certificate', async () => {
    await refused('garbage.pem', 'key.pem', 'tlsCert', /Expected `tlsCert` to be a PEM certificate/);
    await refused(
      'cert.pem',
      'garbage.pem',
      'tlsKey',
      /Expected `tlsKey` to be an unencrypted PEM private key/,
    );
    await refused('cert.pem', 'other-key.pem', 'tlsKey', /does not match the certificate/);
    await refused('expired.pem', 'expired-key.pem', 'tlsCert', /expired on/);
    await refused('missing.pem', 'key.pem', 'tlsCert', /Cannot read --tls-cert .*ENOENT/);
  });

  it("serves the operator's certificate, verified with the operator's CA", async () => {
    const h = await openApi(undefined, { tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') });
    try {
      assert.equal(h.server.caFile, null);
      const serial = await servedSerial(h.server.url, own.caPem);
      assert.equal(serial, new X509Certificate(own.certPem).serialNumber);
    } finally {
      await h.destroy();
    }
  });
});

describe("mTLS: a client certificate's expiry", () => {
  const clock = new ManualClock();
  let h: ApiHarness;
  let ca: string;
  before(async () => {
    h = await openApi(undefined, { clock });
    ca = await readFile(h.server.caFile!, 'utf8');
  });
  after(() => h.destroy());

  const issue = async (days: number): Promise<ClientPems> => {
    const { status, body } = await h.json<{ certPem: string; keyPem: string }>('/v1/certs', {
      body: { user: 'admin', days },
    });
    assert.equal(status, 201);
    return { cert: body.certPem, key: body.keyPem };
  };

  it('cuts the open connections of a certificate when it expires, and no others', async () => {
    const short = await issue(1);
    const long = await issue(7);
    const session = http2Connect(h.server.url, { ca, cert: short.cert, key: short.key });
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca, cert: short.cert, key: short.key });
    const other = http2Connect(h.server.url, { ca, cert: long.cert, key: long.key });
    try {
      assert.equal(await getOnSession(session, '/v1/jobs'), 200);
      assert.equal(await getOnSession(other, '/v1/jobs'), 200);
      const kept = await getKeptAlive(`${h.server.url}/v1/jobs`, agent);
      assert.equal(kept.status, 200);
      const notAfter = new X509Certificate(short.cert).validToDate.getTime();

      // A minute before its end, the certificate's connections still serve.
      clock.advance(notAfter - clock.now().getTime() - 60_000);
      assert.equal(await getOnSession(session, '/v1/jobs'), 200);
      assert.equal(kept.socket.destroyed, false);

      const sessionClosed = once(session, 'close');
      const socketClosed = once(kept.socket, 'close');
      clock.advance(61_000);
      // The server, not the client, ends both connections.
      await Promise.all([sessionClosed, socketClosed]);
      await h.logged(/connection of an expired client certificate closed/);
      await assert.rejects(getOnSession(session, '/v1/jobs'));
      assert.equal(await getOnSession(other, '/v1/jobs'), 200, "another certificate's connection serves on");
    } finally {
      session.destroy();
      other.destroy();
      agent.destroy();
    }
  });
});

describe('mTLS: client certificates', () => {
  let h: ApiHarness;
  let ca: string;
  let aliceToken: string;
  before(async () => {
    h = await openApi();
    aliceToken = await addUserToken(h, 'alice');
    ca = await readFile(h.server.caFile!, 'utf8');
  });
  after(() => h.destroy());

  const issue = async (user: string): Promise<ClientPems & { serial: string }> => {
    const { status, body } = await h.json<{
      certPem: string;
      keyPem: string;
      caPem: string;
      certificate: { serial: string };
    }>('/v1/certs', { body: { user, days: 7 } });
    assert.equal(status, 201);
    assert.equal(body.caPem, ca);
    return { cert: body.certPem, key: body.keyPem, serial: body.certificate.serial };
  };

  it('authenticates the user a certificate names, who becomes the owner of the jobs it starts', async () => {
    const alice = await issue('alice');
    const x = new X509Certificate(alice.cert);
    assert.match(x.subjectAltName ?? '', /URI:jobworker:\/\/user\/alice/);
    const created = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${h.server.url}/v1/jobs`,
        {
          method: 'POST',
          ca,
          cert: alice.cert,
          key: alice.key,
          agent: false,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ command: 'true' }));
    });
    assert.equal(created.status, 201, created.body);
    assert.equal((JSON.parse(created.body) as { owner: string }).owner, 'alice');
    // The user's own view: the admin's jobs are not in it.
    const list = await getWithCert(`${h.server.url}/v1/jobs`, ca, alice);
    const owners = (JSON.parse(list.body) as { jobs: { owner: string }[] }).jobs.map((j) => j.owner);
    assert.deepEqual([...new Set(owners)], ['alice']);
  });

  it('answers 401 for a certificate that names a disabled user', async () => {
    await addUserToken(h, 'erin');
    const erin = await issue('erin');
    assert.equal((await h.json('/v1/users/erin', { method: 'PATCH', body: { disabled: true } })).status, 200);
    const res = await getWithCert(`${h.server.url}/v1/jobs`, ca, erin);
    assert.equal(res.status, 401);
    assert.match(res.body, /names user \\"erin\\", who is unknown or disabled/);
  });

  it('revokes the certificates of a removed user: a new user of the same name cannot use them', async () => {
    await addUserToken(h, 'bob');
    const bob = await issue('bob');
    const bob2 = await issue('bob');
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, bob)).status, 200);
    assert.equal((await h.json('/v1/users/bob', { method: 'DELETE' })).status, 200);
    await addUserToken(h, 'bob');
    await assert.rejects(getWithCert(`${h.server.url}/v1/jobs`, ca, bob));
    await assert.rejects(getWithCert(`${h.server.url}/v1/jobs`, ca, bob2));
    const listed = await h.json<{ certificates: { serial: string; revokedAt: string | null }[] }>(
      '/v1/certs',
    );
    for (const serial of [bob.serial, bob2.serial]) {
      assert.ok(listed.body.certificates.find((c) => c.serial === serial)?.revokedAt, serial);
    }
    const audit = await h.json<{ entries: { target: string | null; result: string }[] }>(
      '/v1/audit?action=cert:revoke',
    );
    const targets = audit.body.entries.filter((e) => e.result === 'ok').map((e) => e.target);
    assert.ok(targets.includes(bob.serial) && targets.includes(bob2.serial), JSON.stringify(targets));
    // The new bob gets certificates of his own that work.
    const fresh = await issue('bob');
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, fresh)).status, 200);
  });

  it('answers 401 for a certificate older than its user: a removal whose revocation never ran', async () => {
    await addUserToken(h, 'frank');
    const old = await issue('frank');
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, old)).status, 200);
    // The server stops after the removal committed and before it revoked the certificate (or
    // another node of a cluster removed frank): the certificate stays valid for the CA.
    await h.server.close();
    const db = new DatabaseSync(join(h.dataDir, 'jobworker.db'));
    try {
      db.prepare('delete from users where name = ?').run('frank');
    } finally {
      db.close();
    }
    await h.restart();
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, old)).status, 401);
    // A certificate's times are whole seconds: one issued in the second before its user was made
    // cannot be told from one of that user (docs/security.md). Past that second, it always can.
    const notBefore = new X509Certificate(old.cert).validFromDate.getTime();
    await until(
      'the second after the old certificate was issued',
      () => Date.now() > latestIssueOf(new Date(notBefore)),
    );
    await addUserToken(h, 'frank');
    const res = await getWithCert(`${h.server.url}/v1/jobs`, ca, old);
    assert.equal(res.status, 401, 'the new frank does not inherit the old certificate');
    assert.match(res.body, /issued before that user was created/);
    assert.match(await h.logged(/certificate-older-than-user/), /"user":"frank"/);
    // His own certificates work, the first one at once.
    const fresh = await issue('frank');
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, fresh)).status, 200);
  });

  it('fails the handshake for a certificate from another CA, and keeps serving others', async () => {
    const { ca: foreign } = await CertificateAuthority.create('someone else', new Date(), 30);
    const mallory = await foreign.issueClient('admin', new Date(), 30);
    await assert.rejects(
      getWithCert(`${h.server.url}/v1/jobs`, ca, { cert: mallory.certPem, key: mallory.keyPem }),
      (err: NodeJS.ErrnoException) => {
        assert.match(String(err.code ?? err.message), /ECONNRESET|EPIPE|socket hang up|ERR_SSL/i);
        return true;
      },
    );
    await h.logged(/client certificate refused/);
    assert.equal((await h.json('/healthz')).status, 200);
  });

  it('fails the handshake for a revoked certificate (certs revoke); the CRL is signed by the CA', async () => {
    const carol = await issue('alice');
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, carol)).status, 200);
    const revoked = await h.json<{ serial: string; revokedAt: string | null }>(
      `/v1/certs/${carol.serial}/revoke`,
      { body: {} },
    );
    assert.equal(revoked.status, 200);
    assert.equal(revoked.body.serial, carol.serial);
    assert.ok(revoked.body.revokedAt);
    await assert.rejects(getWithCert(`${h.server.url}/v1/jobs`, ca, carol));
    const listed = await h.json<{ certificates: { serial: string; revokedAt: string | null }[] }>(
      '/v1/certs',
    );
    assert.ok(listed.body.certificates.find((c) => c.serial === carol.serial)?.revokedAt);
    // Other certificates of the same user still work.
    const fresh = await issue('alice');
    assert.equal((await getWithCert(`${h.server.url}/v1/jobs`, ca, fresh)).status, 200);
  });

  it('cuts open connections of a certificate when it is revoked: HTTP/2 session and HTTP/1.1 keep-alive', async () => {
    const dave = await issue('alice');
    const session = http2Connect(h.server.url, { ca, cert: dave.cert, key: dave.key });
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca, cert: dave.cert, key: dave.key });
    try {
      assert.equal(await getOnSession(session, '/v1/jobs'), 200);
      const kept = await getKeptAlive(`${h.server.url}/v1/jobs`, agent);
      assert.equal(kept.status, 200);
      assert.equal(kept.socket.destroyed, false, 'the keep-alive connection stays open');
      const sessionClosed = once(session, 'close');
      const socketClosed = once(kept.socket, 'close');

      assert.equal((await h.json(`/v1/certs/${dave.serial}/revoke`, { body: {} })).status, 200);
      // The server, not the client, ends both connections.
      await Promise.all([sessionClosed, socketClosed]);
      await h.logged(/connection of a revoked client certificate closed/);
      assert.equal(session.destroyed, true);
      await assert.rejects(getOnSession(session, '/v1/jobs'));
      // A new connection with it fails at the handshake.
      await assert.rejects(getWithCert(`${h.server.url}/v1/jobs`, ca, dave));
      const again = http2Connect(h.server.url, { ca, cert: dave.cert, key: dave.key });
      again.on('error', () => undefined);
      await once(again, 'close');
      // Connections of other certificates are untouched.
      const other = await issue('alice');
      const otherSession = http2Connect(h.server.url, { ca, cert: other.cert, key: other.key });
      try {
        assert.equal(await getOnSession(otherSession, '/v1/jobs'), 200);
        const third = await issue('alice');
        assert.equal((await h.json(`/v1/certs/${third.serial}/revoke`, { body: {} })).status, 200);
        assert.equal(await getOnSession(otherSession, '/v1/jobs'), 200);
      } finally {
        otherSession.close();
      }
    } finally {
      session.destroy();
      agent.destroy();
    }
  });

  it('lets only admins issue, list and revoke certificates; bad input is named', async () => {
    const asAlice = { authorization: `Bearer ${aliceToken}` };
    assert.equal((await h.json('/v1/certs', { headers: asAlice })).status, 403);
    assert.equal((await h.json('/v1/certs', { body: { user: 'alice' }, headers: asAlice })).status, 403);
    const bad = await h.json<{ error: { code: string; field: string } }>('/v1/certs', {
      body: { user: 'a b' },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'user');
    const days = await h.json<{ error: { field: string } }>('/v1/certs', {
      body: { user: 'alice', days: 0 },
    });
    assert.equal(days.body.error.field, 'days');
    const nobody = await h.json<{ error: { code: string } }>('/v1/certs', { body: { user: 'no-such-user' } });
    assert.deepEqual([nobody.status, nobody.body.error.code], [404, 'NOT_FOUND']);
    const unknown = await h.json<{ error: { code: string } }>('/v1/certs/abcdef/revoke', { body: {} });
    assert.equal(unknown.status, 404);
    const notHex = await h.json<{ error: { field: string } }>('/v1/certs/xyz/revoke', { body: {} });
    assert.equal(notHex.body.error.field, 'serial');
  });
});
