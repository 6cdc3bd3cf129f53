import { join } from 'node:path';
import type { Clock } from '../../core/clock.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { writeFileAtomic } from '../atomic-file.ts';
import type { CertificateAuthority, IssuedPair } from './certificate-authority.ts';
import { CRL_DAYS, readIfThere, TLS_FILES, tlsDir } from './tls-files.ts';

/** A client certificate the server issued: never its key, which only the caller got. */
export interface IssuedCertificate {
  /** Lower-case hex. */
  readonly serial: string;
  readonly user: string;
  readonly issuedAt: string;
  readonly notAfter: string;
  /** When it was revoked, or null. */
  readonly revokedAt: string | null;
}

interface IssuedFile {
  readonly version: 1;
  readonly certificates: IssuedCertificate[];
}

/** Longest life of a client certificate: about 10 years. */
export const MAX_CLIENT_CERT_DAYS = 3650;

/**
 * The client certificates this server's CA issued (`<data-dir>/tls/issued.json`) and the
 * revocation list it signs from them (`crl.pem`), which the server hands to TLS. One server per
 * data directory writes both; its changes are made one at a time, each replacing the files
 * atomically.
 */
export class IssuedCertificates {
  readonly #dataDir: string;
  readonly #ca: CertificateAuthority;
  readonly #clock: Clock;
  #certificates: IssuedCertificate[];
  /**
   * The end of the last change queued. Each change reads the list and writes both files in its
   * turn: two made at once from the same list would each drop the other's (the last write wins),
   * losing a revocation from the CRL or an issued certificate from `issued.json`.
   */
  #changes: Promise<unknown> = Promise.resolve();
  /** Called with the new CRL and the certificate just revoked, after a revocation. */
  onRevoked: ((crlPem: string, revoked: IssuedCertificate) => void) | undefined;

  private constructor(
    dataDir: string,
    ca: CertificateAuthority,
    clock: Clock,
    certificates: IssuedCertificate[],
  ) {
    this.#dataDir = dataDir;
    this.#ca = ca;
    this.#clock = clock;
    this.#certificates = certificates;
  }

  /** Reads `issued.json` and makes sure a signed `crl.pem` exists. */
  static async open(dataDir: string, ca: CertificateAuthority, clock: Clock): Promise<IssuedCertificates> {
    const path = join(tlsDir(dataDir), TLS_FILES.issued);
    const text = await readIfThere(path);
    const issued = new IssuedCertificates(
      dataDir,
      ca,
      clock,
      text === undefined ? [] : parseIssued(path, text),
    );
    if ((await readIfThere(issued.crlPath)) === undefined) await issued.#writeCrl();
    return issued;
  }

  get crlPath(): string {
    return join(tlsDir(this.#dataDir), TLS_FILES.crl);
  }

  list(): readonly IssuedCertificate[] {
    return this.#certificates;
  }

  /**
   * A key pair and certificate for `user`, valid `days`; the key is not kept. `userCreatedAt`, when
   * the user was created (by the clock of whichever node added it): the certificate is dated no
   * earlier, so a node whose clock is behind that one's still issues a certificate its user's own
   * (one issued before its user was created is refused: `Authenticator.authenticateUser`).
   */
  async issue(
    user: string,
    days: number,
    userCreatedAt?: Date,
  ): Promise<{ pair: IssuedPair; record: IssuedCertificate }> {
    checkCertificateUser(user);
    if (!(Number.isSafeInteger(days) && days >= 1 && days <= MAX_CLIENT_CERT_DAYS)) {
      throw ValidationError.expected(
        'days',
        `a whole number of days from 1 to ${MAX_CLIENT_CERT_DAYS}`,
        days,
      );
    }
    const clock = this.#clock.now();
    const now =
      userCreatedAt !== undefined && userCreatedAt.getTime() > clock.getTime() ? userCreatedAt : clock;
    // Signed outside the queue: it reads nothing of the list, and a key pair takes a while.
    const pair = await this.#ca.issueClient(user, now, days);
    const record: IssuedCertificate = {
      serial: normalSerial(pair.serial),
      user,
      issuedAt: now.toISOString(),
      notAfter: pair.notAfter.toISOString(),
      revokedAt: null,
    };
    await this.#inTurn(() => this.#save([...this.#certificates, record]));
    return { pair, record };
  }

  /** Revokes a certificate this CA issued; revoking it again changes nothing. */
  async revoke(serial: string): Promise<IssuedCertificate> {
    const wanted = normalSerial(serial);
    return this.#inTurn(() => this.#revoke(wanted));
  }

  async #revoke(wanted: string): Promise<IssuedCertificate> {
    const found = this.#certificates.find((c) => c.serial === wanted);
    if (!found) {
      // Each node of a cluster has a CA of its own: the certificate may be another node's.
      throw new NotFoundError(
        `No certificate with serial ${wanted} was issued by this server (each node of a cluster issues and revokes its own: ask the node that issued it)`,
      );
    }
    if (found.revokedAt !== null) return found;
    const revoked = { ...found, revokedAt: this.#clock.now().toISOString() };
    const certificates = this.#certificates.map((c) => (c === found ? revoked : c));
    // The revocation list first: should it fail, nothing says the certificate is revoked, and the
    // next `revoke` tries again. Saved first, a failed list would leave the certificate working
    // while `issued.json` says revoked, and every later `revoke` would return at once.
    const crl = await this.#writeCrl(certificates);
    await this.#save(certificates);
    this.onRevoked?.(crl, revoked);
    return revoked;
  }

  /** Runs `change` once every change queued before it has ended, whether it succeeded or not. */
  #inTurn<T>(change: () => Promise<T>): Promise<T> {
    const turn = this.#changes.then(change);
    this.#changes = turn.catch(() => undefined);
    return turn;
  }

  async #save(certificates: IssuedCertificate[]): Promise<void> {
    const file: IssuedFile = { version: 1, certificates };
    const path = join(tlsDir(this.#dataDir), TLS_FILES.issued);
    await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
    this.#certificates = certificates;
  }

  async #writeCrl(certificates: readonly IssuedCertificate[] = this.#certificates): Promise<string> {
    const revoked = certificates
      .filter((c) => c.revokedAt !== null)
      .map((c) => ({ serial: c.serial, revokedAt: new Date(c.revokedAt as string) }));
    const crl = await this.#ca.revocationList(revoked, this.#clock.now(), CRL_DAYS);
    await writeFileAtomic(this.crlPath, crl, 0o644);
    return crl;
  }
}

/** Hex, any case, with or without colons and leading zeros; the serial as stored. */
/** A user name a client certificate can carry (in its URI SAN and CN). */
export function checkCertificateUser(user: unknown): string {
  if (typeof user !== 'string' || !/^[A-Za-z0-9._@-]{1,128}$/.test(user)) {
    throw ValidationError.expected(
      'user',
      'a user name of 1 to 128 letters, digits, `.`, `_`, `@` or `-`',
      user,
    );
  }
  return user;
}

export function normalSerial(text: string): string {
  const hex = text.replaceAll(':', '').toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(hex)) {
    throw ValidationError.expected('serial', 'a certificate serial number in hex', text);
  }
  return hex.replace(/^0+(?=.)/, '');
}

function parseIssued(path: string, text: string): IssuedCertificate[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const file = parsed as Partial<IssuedFile> | null;
  if (file?.version !== 1 || !Array.isArray(file.certificates)) {
    throw new Error(
      `${path} is not a jobworker issued-certificates file (expected {"version": 1, "certificates": [...]})`,
    );
  }
  return file.certificates.map((c) => ({ ...c, serial: normalSerial(c.serial) }));
}
