import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { IssuedCertificates } from '../../src/auth/tls/issued-certificates.ts';
import { openCertificateAuthority } from '../../src/auth/tls/tls-files.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const execFileAsync = promisify(execFile);

/** The serials a CRL file lists, as OpenSSL (which Node's TLS uses) reads it, lower-case. */
async function crlSerials(path: string): Promise<string[]> {
  const { stdout } = await execFileAsync('openssl', ['crl', '-in', path, '-noout', '-text']);
  return [...stdout.matchAll(/Serial Number: ([0-9A-F]+)/gi)].map((m) => m[1]!.toLowerCase()).sort();
}

describe('issued client certificates: changes made at once', () => {
  it('keeps every one of concurrent issues and revocations in issued.json and the CRL; a failed one stops none after it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-issued-'));
    try {
      const clock = new ManualClock();
      const ca = await openCertificateAuthority(dataDir, clock.now());
      const issued = await IssuedCertificates.open(dataDir, ca, clock);
      const told: string[] = [];
      let lastCrl = '';
      issued.onRevoked = (crl, revoked) => {
        told.push(revoked.serial);
        lastCrl = crl;
      };
      const first: string[] = [];
      for (const user of ['ann', 'bob', 'cy', 'dee']) first.push((await issued.issue(user, 1)).record.serial);

      // A user's removal revoking its certificates while other admins revoke and issue, and one
      // revocation that fails (no such serial) in the middle of them.
      const [ann, bob, cy, dee] = first as [string, string, string, string];
      const changes = await Promise.allSettled([
        issued.revoke(ann),
        issued.revoke(bob),
        issued.issue('eve', 1),
        issued.revoke('abcdef'),
        issued.revoke(cy),
        issued.issue('fay', 1),
        issued.revoke(ann),
      ]);
      assert.deepEqual(
        changes.map((c) => c.status),
        ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
      );
      assert.match(String((changes[3] as PromiseRejectedResult).reason), /No certificate with serial abcdef/);
      const later = [changes[2], changes[5]].map(
        (c) => (c as PromiseFulfilledResult<{ record: { serial: string } }>).value.record.serial,
      );

      type Listed = readonly { serial: string; revokedAt: string | null }[];
      const serials = (list: Listed) => list.map((c) => c.serial).sort();
      const revokedIn = (list: Listed) => serials(list.filter((c) => c.revokedAt !== null));
      const revoked = [ann, bob, cy].sort();
      const all = [...first, ...later].sort();
      assert.deepEqual(serials(issued.list()), all);
      assert.deepEqual(revokedIn(issued.list()), revoked);
      const stored = JSON.parse(await readFile(join(dataDir, 'tls', 'issued.json'), 'utf8')) as {
        certificates: { serial: string; revokedAt: string | null }[];
      };
      assert.deepEqual(serials(stored.certificates), all);
      assert.deepEqual(revokedIn(stored.certificates), revoked);
      assert.deepEqual(await crlSerials(issued.crlPath), revoked);
      // The server loads the CRL it is told last: it holds every revocation too.
      assert.deepEqual(told.sort(), revoked);
      assert.equal(lastCrl, await readFile(issued.crlPath, 'utf8'));
      assert.ok(!revokedIn(issued.list()).includes(dee));

      // Issues alone, all at once.
      const more = await Promise.all(['gus', 'hal', 'ivy'].map((u) => issued.issue(u, 1)));
      assert.deepEqual(serials(issued.list()), [...all, ...more.map((i) => i.record.serial)].sort());

      // What the next start reads back.
      const reopened = await IssuedCertificates.open(dataDir, ca, clock);
      assert.deepEqual(reopened.list(), issued.list());
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
