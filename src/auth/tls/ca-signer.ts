import { randomBytes } from 'node:crypto';
import { BACKDATE_MS, type IssuedPair, type RevokedSerial } from './certificate-authority.ts';
import {
  type CryptoKey,
  generateKeyPair,
  importPrivateKeyPem,
  privateKeyPem,
  SIGNING_ALGORITHM,
  x509,
} from './x509.ts';

const DAY_MS = 86_400_000;

/**
 * The signing half of the server's CA (`CertificateAuthority`), on @peculiar/x509: loaded only
 * when something is to be signed or the CA is made, since the library and its dependencies hold
 * ~3 MB of a server that, on most starts, signs nothing.
 */
export class CaSigner {
  readonly certPem: string;
  readonly #cert: x509.X509Certificate;
  readonly #key: CryptoKey;

  private constructor(cert: x509.X509Certificate, key: CryptoKey) {
    this.#cert = cert;
    this.#key = key;
    this.certPem = `${cert.toString('pem')}\n`;
  }

  /** A new CA named `name`, valid for `days` from `now`; also returns its key as PEM to store. */
  static async create(name: string, now: Date, days: number): Promise<{ signer: CaSigner; keyPem: string }> {
    const keys = await generateKeyPair();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: newSerial(),
      name: `CN=${escapeDn(name)}`,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + days * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return {
      signer: new CaSigner(cert, keys.privateKey),
      keyPem: await privateKeyPem(keys.privateKey),
    };
  }

  static async load(certPem: string, keyPem: string): Promise<CaSigner> {
    return new CaSigner(new x509.X509Certificate(certPem), await importPrivateKeyPem(keyPem));
  }

  /** A server certificate for `hosts` (names and IP addresses), valid `days` from `now`. */
  issueServer(hosts: readonly string[], now: Date, days: number): Promise<IssuedPair> {
    const names = hosts.map((host) =>
      isIpAddress(host) ? { type: 'ip' as const, value: host } : { type: 'dns' as const, value: host },
    );
    return this.#issue(`CN=${escapeDn(hosts[0] ?? 'localhost')}`, names, 'server', now, days);
  }

  /** A client certificate naming `user` (CN and URI SAN `jobworker://user/<user>`). */
  issueClient(user: string, now: Date, days: number): Promise<IssuedPair> {
    const uri = `jobworker://user/${encodeURIComponent(user)}`;
    return this.#issue(`CN=${escapeDn(user)}`, [{ type: 'url', value: uri }], 'client', now, days);
  }

  /** A CRL signed by this CA listing `revoked`, next update `days` from `now`. */
  async revocationList(revoked: readonly RevokedSerial[], now: Date, days: number): Promise<string> {
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.#cert.subject,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + days * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      signingKey: this.#key,
      // With a reason, each entry carries an extension: @peculiar/x509 writes an empty (invalid)
      // extensions sequence for an entry without one, which OpenSSL refuses to load.
      entries: revoked.map((r) => ({
        serialNumber: r.serial,
        revocationDate: r.revokedAt,
        reason: x509.X509CrlReason.cessationOfOperation,
      })),
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(this.#cert)],
    });
    // OpenSSL reads only the `X509 CRL` label; the library's own PEM says `CRL`.
    return `${x509.PemConverter.encode(crl.rawData, 'X509 CRL')}\n`;
  }

  async #issue(
    subject: string,
    names: x509.JsonGeneralName[],
    use: 'server' | 'client',
    now: Date,
    days: number,
  ): Promise<IssuedPair> {
    const keys = await generateKeyPair();
    const serial = newSerial();
    const notAfter = new Date(now.getTime() + days * DAY_MS);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject,
      issuer: this.#cert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      signingAlgorithm: SIGNING_ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: this.#key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(
          [use === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
          false,
        ),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.AuthorityKeyIdentifierExtension.create(this.#cert),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return {
      certPem: `${cert.toString('pem')}\n`,
      keyPem: await privateKeyPem(keys.privateKey),
      serial: cert.serialNumber.toLowerCase(),
      notAfter: cert.notAfter,
    };
  }
}

/**
 * 16 random bytes, the first from 0x10 to 0x7f: positive without DER padding, and no leading zero
 * digit, so the hex reads the same in `openssl x509 -serial`, Node and `certs list`.
 */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = 0x10 + (bytes[0]! % 0x70);
  return bytes.toString('hex');
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=#])/g, '\\$1');
}

function isIpAddress(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}
