import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { latestIssueOf } from '../../src/auth/tls/certificate-authority.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { until } from '../helpers/wait.ts';
import { type TestCluster, type TestNode, testCluster } from './cluster-harness.ts';

interface ClientPems {
  readonly cert: string;
  readonly key: string;
}

/** GET with a client certificate (no token): the status and body. */
function getWithCert(
  node: TestNode,
  path: string,
  client: ClientPems,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, `${node.url}/`), { ...client, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Each node of a cluster has a CA of its own, its own record of the certificates it issued and its
 * own revocation list, while the users are shared: a user removed through another node keeps the
 * certificates this node issued for it valid for the CA. They must authenticate nobody, not even a
 * later user given the same name.
 */
describe('client certificates of a user removed through another node', () => {
  let db: TestDatabase;
  let cluster: TestCluster;
  let n1: TestNode;
  let n2: TestNode;
  before(async () => {
    db = await createTestDatabase('cluster_certs');
    cluster = await testCluster(db.url, { tls: true });
    n1 = await cluster.start('n1');
    n2 = await cluster.start('n2');
  });
  after(async () => {
    await cluster?.close();
    await db?.drop();
  });

  /** Until `node`'s directory has `name` created at `createdAt` (null: has no such user). */
  const hears = (node: TestNode, name: string, createdAt: string | null) =>
    until(`${node.id} to hear of ${name}`, async () => {
      const { status, body } = await node.api<{ users: { name: string; createdAt: string }[] }>(
        'GET',
        '/v1/users',
      );
      const found = body.users.find((u) => u.name === name);
      return status === 200 && (found?.createdAt ?? null) === createdAt;
    });

  it('refuses a certificate of n1 for bob once bob is removed and added again through n2 (401)', async () => {
    assert.equal((await n1.api('POST', '/v1/users', { name: 'bob', role: 'user' })).status, 201);
    const issued = await n1.api<{ certPem: string; keyPem: string }>('POST', '/v1/certs', {
      user: 'bob',
      days: 1,
    });
    assert.equal(issued.status, 201);
    const old = { cert: issued.body.certPem, key: issued.body.keyPem };
    assert.equal((await getWithCert(n1, '/v1/jobs', old)).status, 200);

    assert.equal((await n2.api('DELETE', '/v1/users/bob')).status, 200);
    await hears(n1, 'bob', null);
    assert.equal((await getWithCert(n1, '/v1/jobs', old)).status, 401, 'bob is gone');

    // Past the second the old certificate was issued in (its times are whole seconds: one issued
    // in the second before its user was made cannot be told from one of that user).
    const notBefore = new X509Certificate(old.cert).validFromDate;
    await until(
      'the second after the old certificate was issued',
      () => Date.now() > latestIssueOf(notBefore),
    );
    const again = await n2.api<{ createdAt: string }>('POST', '/v1/users', { name: 'bob', role: 'user' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    await hears(n1, 'bob', again.body.createdAt);
    const refused = await getWithCert(n1, '/v1/jobs', old);
    assert.equal(refused.status, 401, 'the new bob does not inherit the old certificate');
    assert.match(refused.body, /issued before that user was created/);

    // The new bob's own certificate, from n1, works at once.
    const fresh = await n1.api<{ certPem: string; keyPem: string }>('POST', '/v1/certs', {
      user: 'bob',
      days: 1,
    });
    assert.equal(fresh.status, 201);
    const mine = { cert: fresh.body.certPem, key: fresh.body.keyPem };
    assert.equal((await getWithCert(n1, '/v1/jobs', mine)).status, 200);
  });
});
