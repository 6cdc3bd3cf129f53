import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  loadClusterSecret,
  NODE_HEADERS,
  NodeCredentials,
  type NodeSignatureError,
} from '../../src/cluster/node-credentials.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

describe('cluster secret file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-secret-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('is created owner-only when asked, and read back the same', async () => {
    const path = join(dir, 'created');
    const secret = await loadClusterSecret(path, { create: true });
    assert.equal(secret.length, 32);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await loadClusterSecret(path), secret);
    assert.match(await readFile(path, 'utf8'), /^[0-9a-f]{64}\n$/);
  });

  it('is refused when missing (without create), readable by others, or short, saying what to do', async () => {
    await assert.rejects(
      loadClusterSecret(join(dir, 'missing')),
      /Cannot read the cluster secret file .*ENOENT/,
    );
    const open = join(dir, 'open');
    await writeFile(open, randomBytes(32).toString('hex'), { mode: 0o644 });
    await chmod(open, 0o644);
    await assert.rejects(
      loadClusterSecret(open),
      /may be read by its group or others \(mode 644\).*chmod 600/,
    );
    const short = join(dir, 'short');
    await writeFile(short, randomBytes(16).toString('hex'), { mode: 0o600 });
    await assert.rejects(loadClusterSecret(short), /at least 32 bytes as hex .*got 32 characters/);
    assert.throws(
      () => new NodeCredentials({ node: 'a', secret: randomBytes(31) }),
      /at least 32 bytes, got 31/,
    );
  });
});

describe('NodeCredentials', () => {
  const secret = randomBytes(32);
  const clock = new ManualClock(new Date('2026-12-02T12:00:00Z'));
  const a = new NodeCredentials({ node: 'node-a', secret, clock });
  const c = new NodeCredentials({ node: 'node-c', secret, clock });
  const who = { user: 'alice@example', role: 'viewer' } as const;

  it('accepts its own signature within ±60 s and names the principal and the node', () => {
    const headers = a.sign('GET', '/v1/jobs/x/output?stream=all', who);
    clock.advance(60_000);
    const call = c.verify('GET', '/v1/jobs/x/output?stream=all', headers);
    assert.deepEqual(call.principal, who);
    assert.equal(call.node, 'node-a');
    clock.advance(1);
    assert.throws(
      () => c.verify('GET', '/v1/jobs/x/output?stream=all', headers),
      (err: NodeSignatureError) => err.reason === 'node-signature-stale',
    );
  });

  it('refuses any field changed, and a header missing', () => {
    const headers = a.sign('POST', '/v1/jobs/x/stop', who, '{"graceMs":1}');
    const refused = (method: string, path: string, changed: Record<string, string>, reason: string) =>
      assert.throws(
        () => c.verify(method, path, { ...headers, ...changed }),
        (err: NodeSignatureError) => err.reason === reason,
        JSON.stringify(changed),
      );
    refused('GET', '/v1/jobs/x/stop', {}, 'node-signature-invalid');
    refused('POST', '/v1/jobs/y/stop', {}, 'node-signature-invalid');
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.actAs]: 'bob' }, 'node-signature-invalid');
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.actAsRole]: 'admin' }, 'node-signature-invalid');
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.node]: 'node-b' }, 'node-signature-invalid');
    refused(
      'POST',
      '/v1/jobs/x/stop',
      { [NODE_HEADERS.bodyDigest]: '0'.repeat(64) },
      'node-signature-invalid',
    );
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.actAsRole]: 'root' }, 'node-role-unknown');
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.time]: '1e12' }, 'node-time-malformed');
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.signature]: 'v1=zz' }, 'node-signature-invalid');
    refused('POST', '/v1/jobs/x/stop', { [NODE_HEADERS.signature]: '' }, 'node-header-missing');
    const other = new NodeCredentials({ node: 'node-a', secret: randomBytes(32), clock });
    assert.throws(
      () => c.verify('POST', '/v1/jobs/x/stop', other.sign('POST', '/v1/jobs/x/stop', who, '{"graceMs":1}')),
      /invalid signature: its cluster secret differs/,
    );
  });
});
