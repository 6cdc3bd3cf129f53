import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { subjectAltNames } from '../../src/api/rest/client-certificate.ts';
import { CertificateService } from '../../src/api/rpc/gen/jobworker/v1/certificate_service_pb.ts';
import {
  generateKeyPair,
  importPrivateKeyPem,
  privateKeyPem,
  SIGNING_ALGORITHM,
  x509,
} from '../../src/auth/tls/x509.ts';
import { type ApiHarness, addUserToken, openApi } from './api-harness.ts';

interface ClientPems {
  readonly cert: string;
  readonly key: string;
}

let serials = 0x10;

/** A client certificate signed by the server's own CA, with the subject and SAN entries given. */
async function signedByServerCa(
  dataDir: string,
  subject: string,
  names: x509.JsonGeneralName[],
): Promise<ClientPems> {
  const dir = join(dataDir, 'tls');
  const caCert = new x509.X509Certificate(await readFile(join(dir, 'ca.pem'), 'utf8'));
  const caKey = await importPrivateKeyPem(await readFile(join(dir, 'ca-key.pem'), 'utf8'));
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serials++).toString(16),
    subject,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ...(names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names)]),
    ],
  });
  return { cert: cert.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

describe('the user a client certificate names, over REST and RPC', () => {
  let h: ApiHarness;
  let ca: string;
  before(async () => {
    h = await openApi();
    await addUserToken(h, 'alice');
    ca = await readFile(h.server.caFile!, 'utf8');
  });
  after(() => h.destroy());

  /** `GET /v1/certs` (admins only) with the certificate alone: 200 admin, 403 alice, 401 nobody. */
  const restAnswer = (client: ClientPems): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${h.server.url}/v1/certs`,
        { ca, cert: client.cert, key: client.key, agent: false },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });

  /** `ListCertificates` twice on one connection: 'ok' for admin, else the code of the error. */
  const rpcAnswers = async (client: ClientPems): Promise<string[]> => {
    const certificates = createClient(
      CertificateService,
      createConnectTransport({
        baseUrl: h.server.url,
        httpVersion: '1.1',
        nodeOptions: { ca, cert: client.cert, key: client.key },
      }),
    );
    const answers: string[] = [];
    for (let i = 0; i < 2; i++) {
      try {
        await certificates.listCertificates({});
        answers.push('ok');
      } catch (err) {
        assert.ok(err instanceof ConnectError, String(err));
        answers.push(Code[err.code]);
      }
    }
    return answers;
  };

  const certificate = (subject: string, names: x509.JsonGeneralName[]) =>
    signedByServerCa(h.dataDir, subject, names);

  it('takes the CN when no URI entry names a user', async () => {
    const admin = await certificate('CN=admin', [{ type: 'dns', value: 'client.example' }]);
    assert.equal((await restAnswer(admin)).status, 200);
    assert.deepEqual(await rpcAnswers(admin), ['ok', 'ok']);
  });

  it('reads no user out of another entry: a DNS name holding ", URI:jobworker://user/admin"', async () => {
    const alice = await certificate('CN=alice', [
      { type: 'dns', value: 'x, URI:jobworker://user/admin y' },
      { type: 'url', value: 'jobworker://user/alice' },
    ]);
    assert.equal((await restAnswer(alice)).status, 403);
    assert.deepEqual(await rpcAnswers(alice), ['PermissionDenied', 'PermissionDenied']);
  });

  it('names the user by the whole URI entry: jobworker://user/admin y names "admin y", not admin', async () => {
    const spaced = await certificate('CN=alice', [{ type: 'url', value: 'jobworker://user/admin y' }]);
    const rest = await restAnswer(spaced);
    assert.equal(rest.status, 401);
    assert.match(rest.body, /names user \\"admin y\\", who is unknown/);
    assert.deepEqual(await rpcAnswers(spaced), ['Unauthenticated', 'Unauthenticated']);
  });

  it('names nobody when its URI entries name two users (neither the first nor the CN)', async () => {
    const two = await certificate('CN=alice', [
      { type: 'url', value: 'jobworker://user/admin' },
      { type: 'url', value: 'jobworker://user/alice' },
    ]);
    assert.equal((await restAnswer(two)).status, 401);
    assert.deepEqual(await rpcAnswers(two), ['Unauthenticated', 'Unauthenticated']);
    // The same user twice is one user.
    const twice = await certificate('CN=bob', [
      { type: 'url', value: 'jobworker://user/alice' },
      { type: 'url', value: 'jobworker://user/alice' },
    ]);
    assert.equal((await restAnswer(twice)).status, 403);
  });
});

describe("subjectAltNames: Node's subjectAltName text, entry by entry", () => {
  it('splits at the separators outside quotes and decodes the quoted values', () => {
    assert.deepEqual(
      subjectAltNames('DNS:"x\\u002c URI:jobworker://user/admin y", URI:jobworker://user/alice, DNS:a b'),
      ['DNS:x, URI:jobworker://user/admin y', 'URI:jobworker://user/alice', 'DNS:a b'],
    );
    assert.deepEqual(subjectAltNames('URI:"jobworker://user/a\\"b"'), ['URI:jobworker://user/a"b']);
    assert.deepEqual(subjectAltNames(''), []);
  });

  it('gives nothing for text not in the form Node writes', () => {
    assert.equal(subjectAltNames('DNS:"open, URI:jobworker://user/admin'), undefined);
    assert.equal(subjectAltNames('DNS:"bad \\q"'), undefined);
  });
});
