import type { Caller, Principal } from '../auth/principal.ts';
import type { IssuedPair } from '../auth/tls/certificate-authority.ts';
import {
  checkCertificateUser,
  type IssuedCertificate,
  type IssuedCertificates,
} from '../auth/tls/issued-certificates.ts';
import type { UserDirectory } from '../auth/user-directory.ts';
import type { AuditSink } from '../core/audit.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';
import { type AuditContext, auditedCall } from './audited-call.ts';
import { requireAdmin } from './require-admin.ts';

/** Default life of a client certificate. */
export const DEFAULT_CLIENT_CERT_DAYS = 90;

/** What the server's CA issues with: its record of issued certificates and its own certificate. */
export interface CertificateIssuer {
  readonly issued: IssuedCertificates;
  readonly caPem: string;
}

/** A new client certificate, as handed out once: the key is not kept by the server. */
export interface NewClientCertificate {
  readonly certificate: IssuedCertificate;
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

/**
 * Client certificates for every adapter, admins only: issued for a known user, listed, revoked
 * (the revocation list takes effect on the next handshake), each change in the audit trail.
 * `issuer` is null when the server has no CA of its own to issue with (plain HTTP, or client
 * certificates verified against `--client-ca`): every call then says so.
 */
export class CertificateService {
  readonly #issuer: CertificateIssuer | null;
  readonly #users: Pick<UserDirectory, 'user'>;
  readonly #audit: AuditContext;

  constructor(
    issuer: CertificateIssuer | null,
    users: Pick<UserDirectory, 'user'>,
    options: { audit: AuditSink; clock?: Clock },
  ) {
    this.#issuer = issuer;
    this.#users = users;
    this.#audit = { sink: options.audit, clock: options.clock ?? systemClock };
  }

  list(who: Principal): readonly IssuedCertificate[] {
    return this.#use(who, 'list certificates').issued.list();
  }

  issue(who: Caller, user: string, days = DEFAULT_CLIENT_CERT_DAYS): Promise<NewClientCertificate> {
    return auditedCall(this.#audit, who, 'cert:issue', user, async () => {
      const { issued, caPem } = this.#use(who, 'issue certificates');
      checkCertificateUser(user);
      const known = this.#users.user(user);
      if (!known) throw new JobworkerError('NOT_FOUND', `No user named ${user}`);
      const { pair, record }: { pair: IssuedPair; record: IssuedCertificate } = await issued.issue(
        user,
        days,
        known.createdAt,
      );
      return { certificate: record, certPem: pair.certPem, keyPem: pair.keyPem, caPem };
    });
  }

  revoke(who: Caller, serial: string): Promise<IssuedCertificate> {
    return auditedCall(this.#audit, who, 'cert:revoke', serial, () =>
      this.#use(who, 'revoke certificates').issued.revoke(serial),
    );
  }

  /**
   * Revokes every valid certificate this server issued for `user` (its removal: the name may be
   * given to someone else later), each audited as `cert:revoke`; nothing to do without a CA of our
   * own. Another node's certificates stay valid until they expire, but authenticate nobody: the
   * user is gone, and a user of the same name added later is younger than they are
   * (`Authenticator.authenticateUser`).
   */
  async revokeAllOf(who: Caller, user: string): Promise<IssuedCertificate[]> {
    if (this.#issuer === null) return [];
    const valid = this.#issuer.issued.list().filter((c) => c.user === user && c.revokedAt === null);
    const revoked: IssuedCertificate[] = [];
    for (const c of valid) revoked.push(await this.revoke(who, c.serial));
    return revoked;
  }

  #use(who: Principal, what: string): CertificateIssuer {
    requireAdmin(who, what);
    if (this.#issuer === null) {
      throw new JobworkerError(
        'FORBIDDEN',
        'This server issues no client certificates: it serves plain HTTP, or verifies client certificates against --client-ca (issue them with that CA)',
      );
    }
    return this.#issuer;
  }
}
