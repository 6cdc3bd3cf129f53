import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { IDENTITIES, type Identity } from './authorization-table.ts';

/** What a case of an adapter's matrix acts on: a finished job of its owner, and fresh things to change. */
export interface Fixture {
  /** A finished job of the case's owner (alice, or bob for "another user's job"). */
  readonly job: string;
  /** A finished job of the case's owner made for this case alone (it may be deleted). */
  freshJob(): Promise<string>;
  /** A user made for this case alone (it may be removed). */
  freshUser(): Promise<string>;
  /** The id of a token made for this case alone (it may be revoked). */
  freshToken(): Promise<string>;
  /** The serial of a client certificate of bob's made for this case alone (it may be revoked). */
  freshCertificate(): Promise<string>;
  /** The id of a server-wide webhook made for this case alone (it may be removed). */
  freshWebhook(): Promise<string>;
  /** A name no user has yet. */
  newName(): string;
}

/**
 * The server every adapter's matrix runs against: the REST app over TLS on loopback (so an mTLS
 * caller can make a real handshake), with a credential for each identity of the table, alice's
 * client certificate, and a finished job of alice's and of bob's.
 */
export interface MatrixWorld {
  readonly h: Harness;
  readonly a: AppHarness;
  /** The bearer token of each identity; undefined for none (and for the mTLS user). */
  readonly tokens: Readonly<Record<Identity, string | undefined>>;
  /** alice's client certificate and the CA that verifies the server. */
  readonly aliceCertificate: { readonly cert: string; readonly key: string; readonly ca: string };
  /** The fixture of a case run as `identity`. */
  fixtureFor(identity: Identity): Fixture;
  close(): Promise<void>;
}

export async function openMatrixWorld(): Promise<MatrixWorld> {
  const clock = new ManualClock();
  const h = await openHarness();
  // One named task, `noop`, for the task routes.
  const tasksFile = join(h.dataDir, 'tasks.json');
  await writeFile(tasksFile, JSON.stringify({ tasks: { noop: { command: ['true'] } } }));
  // Hundreds of bad credentials from one address, on purpose: no rate limit in the way.
  const a = await openApp(h, { clock, limits: { maxFailures: 1_000_000 }, tls: true, tasksFile });
  const finishedJob = async (owner: string): Promise<string> => {
    const job = await a.service.start({ user: owner, role: 'user' }, { command: 'true' });
    await h.engine.waitFor(job.id);
    return job.id;
  };
  const admin = await a.issue('admin', 'admin');
  const alice = await a.issue('alice', 'user');
  await a.issue('bob', 'user');
  const viewer = await a.issue('vera', 'viewer');
  const expired = await a.accounts.issueToken({ user: 'alice', lifetimeMs: 1000 });
  const revoked = await a.accounts.issueToken({ user: 'alice' });
  await a.accounts.revokeToken(revoked.record.id);
  clock.advance(1000);
  const tokens: Record<Identity, string | undefined> = {
    'no credential': undefined,
    'wrong token': 'jw_wrongwrongwrongwrongwrongwrongwrongwrongwro',
    'expired token': expired.token,
    'revoked token': revoked.token,
    viewer,
    'user on own job': alice,
    "user on another user's job": alice,
    admin,
    'mTLS user': undefined,
  };
  if (Object.keys(tokens).length !== IDENTITIES.length) throw new Error('an identity has no credential');
  const pems = await a.certificates.issue({ user: 'admin', role: 'admin' }, 'alice', 1);
  const finished: Record<string, string> = {
    alice: await finishedJob('alice'),
    bob: await finishedJob('bob'),
  };
  let names = 0;
  return {
    h,
    a,
    tokens,
    aliceCertificate: { cert: pems.certPem, key: pems.keyPem, ca: a.caPem },
    fixtureFor: (identity) => {
      const owner = identity === "user on another user's job" ? 'bob' : 'alice';
      const fixture: Fixture = {
        job: finished[owner]!,
        freshJob: () => finishedJob(owner),
        freshUser: async () => (await a.accounts.addUser({ name: fixture.newName(), role: 'user' })).name,
        freshToken: async () => (await a.accounts.issueToken({ user: 'bob' })).record.id,
        freshCertificate: async () =>
          (await a.certificates.issue({ user: 'admin', role: 'admin' }, 'bob', 1)).certificate.serial,
        freshWebhook: async () =>
          (
            await a.webhooks.add(
              { user: 'admin', role: 'admin' },
              { url: 'https://hooks.example.com/matrix' },
            )
          ).webhook.id,
        newName: () => `matrix-${++names}`,
      };
      return fixture;
    },
    close: async () => {
      await a.close();
      await h.destroy();
    },
  };
}
