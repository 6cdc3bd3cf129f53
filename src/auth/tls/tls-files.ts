import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.ts';
import { CertificateAuthority } from './certificate-authority.ts';

/** `<data-dir>/tls/`, mode 0700. */
export const TLS_DIR = 'tls';
export const TLS_FILES = {
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  crl: 'crl.pem',
  issued: 'issued.json',
} as const;

/** Lifetimes, in days. The server certificate is renewed once a third of its life is left. */
export const CA_DAYS = 3650;
export const SERVER_CERT_DAYS = 90;
export const CRL_DAYS = 3650;
const DAY_MS = 86_400_000;

export function tlsDir(dataDir: string): string {
  return join(dataDir, TLS_DIR);
}

/** The server's own certificate material as Node's TLS takes it. */
export interface ServerMaterial {
  readonly ca: CertificateAuthority;
  readonly certPem: string;
  readonly keyPem: string;
  /** When the certificate enters its renewal window. */
  readonly renewAt: Date;
  /** True when this call made a new certificate (first start, renewal, new listen host). */
  readonly fresh: boolean;
}

/**
 * The names the server certificate carries: the listen host (unless it is a wildcard address),
 * `localhost`, 127.0.0.1, ::1 and the machine's host name.
 */
export function serverNames(listenHost: string): string[] {
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  const names = [...(wildcard ? [] : [listenHost]), 'localhost', '127.0.0.1', '::1', hostname()];
  return [...new Set(names)];
}

/** Opens `<data-dir>/tls/`, creating it (0700) and the CA on first start. */
export async function openCertificateAuthority(dataDir: string, now: Date): Promise<CertificateAuthority> {
  const dir = tlsDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const caPath = join(dir, TLS_FILES.ca);
  const keyPath = join(dir, TLS_FILES.caKey);
  const [certPem, keyPem] = await Promise.all([readIfThere(caPath), readIfThere(keyPath)]);
  if (certPem !== undefined && keyPem !== undefined) return CertificateAuthority.load(certPem, keyPem);
  if (certPem !== undefined || keyPem !== undefined) {
    throw new Error(
      `${dir} holds only one of ${TLS_FILES.ca} and ${TLS_FILES.caKey}: restore the other, or remove both to make a new CA (clients must then trust the new ${TLS_FILES.ca})`,
    );
  }
  const created = await CertificateAuthority.create(`jobworker CA ${hostname()}`, now, CA_DAYS);
  // The key first: a CA certificate without its key would be refused at the next start.
  await writeFileAtomic(keyPath, created.keyPem, 0o600);
  await writeFileAtomic(caPath, created.ca.certPem, 0o644);
  return created.ca;
}

/**
 * The server certificate in `<data-dir>/tls/`, issued anew when there is none, when it has
 * entered its renewal window (a third of its life left), or when it lacks one of `names`.
 */
export async function ensureServerCertificate(
  dataDir: string,
  ca: CertificateAuthority,
  names: readonly string[],
  now: Date,
): Promise<ServerMaterial> {
  const dir = tlsDir(dataDir);
  const certPath = join(dir, TLS_FILES.serverCert);
  const keyPath = join(dir, TLS_FILES.serverKey);
  const [certPem, keyPem] = await Promise.all([readIfThere(certPath), readIfThere(keyPath)]);
  if (certPem !== undefined && keyPem !== undefined) {
    const cert = new X509Certificate(certPem);
    const renewAt = renewalTime(cert);
    if (
      renewAt > now &&
      names.every((name) => covers(cert, name)) &&
      cert.checkIssued(new X509Certificate(ca.certPem))
    ) {
      return { ca, certPem, keyPem, renewAt, fresh: false };
    }
  }
  return issueServerCertificate(dataDir, ca, names, now);
}

/** Issues and stores a new server certificate for `names`. */
export async function issueServerCertificate(
  dataDir: string,
  ca: CertificateAuthority,
  names: readonly string[],
  now: Date,
): Promise<ServerMaterial> {
  const dir = tlsDir(dataDir);
  const pair = await ca.issueServer(names, now, SERVER_CERT_DAYS);
  await writeFileAtomic(join(dir, TLS_FILES.serverKey), pair.keyPem, 0o600);
  await writeFileAtomic(join(dir, TLS_FILES.serverCert), pair.certPem, 0o644);
  return {
    ca,
    certPem: pair.certPem,
    keyPem: pair.keyPem,
    renewAt: renewalTime(new X509Certificate(pair.certPem)),
    fresh: true,
  };
}

/** Two thirds into the certificate's life. */
export function renewalTime(cert: X509Certificate): Date {
  const from = cert.validFromDate.getTime();
  const to = cert.validToDate.getTime();
  return new Date(to - (to - from) / 3);
}

function covers(cert: X509Certificate, name: string): boolean {
  return isIP(name) !== 0 ? cert.checkIP(name) !== undefined : cert.checkHost(name) !== undefined;
}

export async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export { DAY_MS };
