import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { CaSigner } from './ca-signer.ts';

/** A certificate with its private key, both PEM. */
export interface IssuedPair {
  readonly certPem: string;
  readonly keyPem: string;
  /** Lower-case hex, no leading zeros trimmed: as `openssl x509 -serial` prints it, lower-cased. */
  readonly serial: string;
  readonly notAfter: Date;
}

/**
 * Certificates this CA issues start this long before their issue, so that a peer whose clock is
 * behind accepts them. Never to be changed: when a client certificate was issued is read back from
 * its `notBefore` with it (`latestIssueOf`), for every certificate issued so far.
 */
export const BACKDATE_MS = 5 * 60_000;

/**
 * The latest moment (ms since the epoch) a certificate of this CA starting at `notBefore` can have
 * been issued: X.509 keeps whole seconds, so the issue was within the second after
 * `notBefore + BACKDATE_MS`.
 */
export function latestIssueOf(notBefore: Date): number {
  return notBefore.getTime() + BACKDATE_MS + 999;
}

/** A revoked certificate, as the CRL lists it. */
export interface RevokedSerial {
  readonly serial: string;
  readonly revokedAt: Date;
}

/**
 * The server's private CA: ECDSA P-256, self-signed. It signs the server's certificate, the
 * client certificates `jobworker certs issue` makes, and the revocation list.
 *
 * What signs (`CaSigner`, on @peculiar/x509 and its dependencies: ~3 MB of the server's memory)
 * is loaded at the first signature, not at start: a server whose certificate and revocation list
 * are on disk and current signs nothing until a client certificate is issued or revoked, or its
 * own certificate is renewed. The CA's files are checked at load all the same, with Node's own
 * X.509 parser: a broken one is refused at start, not at the first signature.
 */
export class CertificateAuthority {
  readonly certPem: string;
  readonly notAfter: Date;
  readonly #keyPem: string;
  #signer: Promise<CaSigner> | undefined;

  private constructor(certPem: string, keyPem: string, notAfter: Date, signer?: CaSigner) {
    this.certPem = certPem;
    this.#keyPem = keyPem;
    this.notAfter = notAfter;
    if (signer) this.#signer = Promise.resolve(signer);
  }

  /** A new CA named `name`, valid for `days` from `now`; also returns its key as PEM to store. */
  static async create(
    name: string,
    now: Date,
    days: number,
  ): Promise<{ ca: CertificateAuthority; keyPem: string }> {
    const { CaSigner } = await import('./ca-signer.ts');
    const { signer, keyPem } = await CaSigner.create(name, now, days);
    const notAfter = new X509Certificate(signer.certPem).validToDate;
    return { ca: new CertificateAuthority(signer.certPem, keyPem, notAfter, signer), keyPem };
  }

  /**
   * The CA stored as `certPem` and `keyPem`: refused when either is not one, when the certificate
   * is not a CA's, when the key is not the certificate's, or when it is not an ECDSA P-256 key
   * (the only kind the signer takes: anything else would fail at the first signature, a renewal
   * or a revocation, not here). The certificate is kept as Node writes it (its first PEM block,
   * in lines of 64 characters ending in `\n`: what the files jobworker writes hold), the key as
   * PKCS#8, which the signer imports.
   */
  static async load(certPem: string, keyPem: string): Promise<CertificateAuthority> {
    const cert = new X509Certificate(certPem);
    if (!cert.ca) throw new Error(`The CA certificate (${cert.subject}) is not a CA's certificate`);
    const key = createPrivateKey(keyPem);
    const curve = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined;
    if (curve !== 'prime256v1') {
      throw new Error(
        `The CA key must be an ECDSA P-256 key (the kind jobworker makes), got ${curve ? `an EC key on ${curve}` : `a key of type ${String(key.asymmetricKeyType)}`}`,
      );
    }
    if (!cert.checkPrivateKey(key)) {
      throw new Error(`The CA key is not the key of the CA certificate (${cert.subject})`);
    }
    const pkcs8 = key.export({ type: 'pkcs8', format: 'pem' }) as string;
    return new CertificateAuthority(cert.toString(), pkcs8, cert.validToDate);
  }

  /** A server certificate for `hosts` (names and IP addresses), valid `days` from `now`. */
  async issueServer(hosts: readonly string[], now: Date, days: number): Promise<IssuedPair> {
    return (await this.#signing()).issueServer(hosts, now, days);
  }

  /** A client certificate naming `user` (CN and URI SAN `jobworker://user/<user>`). */
  async issueClient(user: string, now: Date, days: number): Promise<IssuedPair> {
    return (await this.#signing()).issueClient(user, now, days);
  }

  /** A CRL signed by this CA listing `revoked`, next update `days` from `now`. */
  async revocationList(revoked: readonly RevokedSerial[], now: Date, days: number): Promise<string> {
    return (await this.#signing()).revocationList(revoked, now, days);
  }

  /** The signer, loaded once (a failed load is tried again by the next signature). */
  #signing(): Promise<CaSigner> {
    this.#signer ??= import('./ca-signer.ts')
      .then(({ CaSigner }) => CaSigner.load(this.certPem, this.#keyPem))
      .catch((err: unknown) => {
        this.#signer = undefined;
        throw err;
      });
    return this.#signer;
  }
}
