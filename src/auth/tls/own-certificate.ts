import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ValidationError } from '../../core/errors.ts';

/** A certificate and key the operator brought (`--tls-cert`, `--tls-key`), checked before use. */
export interface OwnCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  readonly notAfter: Date;
}

/**
 * Reads and checks `--tls-cert`/`--tls-key`: both PEM, the key the certificate's own, and the
 * certificate valid now. Each failure names the flag and what was wrong, so the server refuses
 * to start with a reason instead of failing every handshake later.
 */
export async function readOwnCertificate(
  certFile: string,
  keyFile: string,
  now: Date,
): Promise<OwnCertificate> {
  const certPem = await readPem('tlsCert', '--tls-cert', certFile);
  const keyPem = await readPem('tlsKey', '--tls-key', keyFile);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw ValidationError.expected('tlsCert', 'a PEM certificate (-----BEGIN CERTIFICATE-----)', certFile);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw ValidationError.expected(
      'tlsKey',
      'an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)',
      keyFile,
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new ValidationError(
      'tlsKey',
      `The key in ${keyFile} does not match the certificate in ${certFile}`,
    );
  }
  if (cert.validToDate <= now) {
    throw new ValidationError(
      'tlsCert',
      `The certificate in ${certFile} expired on ${cert.validToDate.toISOString()}`,
    );
  }
  if (cert.validFromDate > now) {
    throw new ValidationError(
      'tlsCert',
      `The certificate in ${certFile} is not valid before ${cert.validFromDate.toISOString()}`,
    );
  }
  return { certPem, keyPem, notAfter: cert.validToDate };
}

/** `--client-ca`: one or more PEM CA certificates that client certificates must chain to. */
export async function readClientCa(file: string): Promise<string> {
  const pem = await readPem('clientCa', '--client-ca', file);
  try {
    new X509Certificate(pem);
  } catch {
    throw ValidationError.expected('clientCa', 'a PEM CA certificate (-----BEGIN CERTIFICATE-----)', file);
  }
  return pem;
}

async function readPem(field: string, flag: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ValidationError(
      field,
      `Cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}
