import { readFile as readFileCallback, stat as statCallback } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { TlsTrust } from '../client/connection.ts';
import { UsageError } from './errors.ts';

/** The Job Worker design's defaults, relative to the current directory. */
export const CERT_DIR_FILES = {
  cert: join('cert', 'client-cert.pem'),
  key: join('cert', 'client-key.pem'),
  ca: join('cert', 'ca-cert.pem'),
} as const;

export interface TlsFlags {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
}

/**
 * The CA: `--ca`, else `JOBWORKER_CA`, else every one of `./cert/ca-cert.pem` and the local
 * server's `<dataDir>/tls/ca.pem` that can be read (none: the system's CAs, for a server with a
 * public certificate). The client certificate: `--cert`/`--key`, else the variables, else
 * `./cert/client-cert.pem` and `./cert/client-key.pem` when both exist. There is no way to skip
 * verifying the server.
 */
export async function resolveTlsTrust(
  flags: TlsFlags,
  env: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined; dataDir: string },
  cwd: string,
): Promise<TlsTrust> {
  const explicitCa = flags.ca ?? env.ca;
  let caFiles: string[];
  let ca: string[];
  if (explicitCa !== undefined) {
    const file = resolve(cwd, explicitCa);
    const source = flags.ca !== undefined ? '--ca' : 'JOBWORKER_CA';
    ca = [await readOrFail(file, `${source} ${explicitCa}`)];
    caFiles = [file];
  } else {
    const ownCertDir = await isOwnCertDir(cwd);
    const candidates = [
      ...(ownCertDir ? [resolve(cwd, CERT_DIR_FILES.ca)] : []),
      join(env.dataDir, 'tls', 'ca.pem'),
    ];
    const found = await Promise.all(candidates.map((file) => readIfReadable(file)));
    caFiles = candidates.filter((_, i) => found[i] !== undefined);
    ca = found.filter((pem): pem is string => pem !== undefined);
  }

  let certFile = flags.cert ?? env.cert;
  let keyFile = flags.key ?? env.key;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(
      certFile === undefined
        ? 'Expected --cert (or JOBWORKER_CERT) with --key: give the certificate and its key'
        : 'Expected --key (or JOBWORKER_KEY) with --cert: give the certificate and its key',
    );
  }
  let cert: string | undefined;
  let key: string | undefined;
  if (certFile !== undefined && keyFile !== undefined) {
    certFile = resolve(cwd, certFile);
    cert = await readOrFail(certFile, `--cert ${certFile}`);
    key = await readOrFail(resolve(cwd, keyFile), `--key ${keyFile}`);
  } else if (await isOwnCertDir(cwd)) {
    const [defaultCert, defaultKey] = await Promise.all([
      readIfReadable(resolve(cwd, CERT_DIR_FILES.cert)),
      readIfReadable(resolve(cwd, CERT_DIR_FILES.key)),
    ]);
    if (defaultCert !== undefined && defaultKey !== undefined) {
      cert = defaultCert;
      key = defaultKey;
      certFile = resolve(cwd, CERT_DIR_FILES.cert);
      keyFile = resolve(cwd, CERT_DIR_FILES.key);
    }
  }
  return {
    ca: ca.length === 0 ? undefined : ca,
    caFiles,
    caExplicit: explicitCa !== undefined,
    cert,
    key,
    certFile: cert === undefined ? undefined : certFile,
  };
}

// The callback API of node:fs, which Node has loaded already: node:fs/promises would load a dozen
// more built-in modules into every CLI command.
const readFile = promisify(readFileCallback);

const stat = promisify(statCallback);

/**
 * True when `./cert` is the caller's own: a directory owned by this user (or root) that no one
 * else may write. A CA found in a directory someone else controls (a cloned repository, another
 * user's directory) would let that someone pose as the server and collect the token.
 */
async function isOwnCertDir(cwd: string): Promise<boolean> {
  const info = await stat(resolve(cwd, 'cert')).catch(() => undefined);
  if (!info?.isDirectory()) return false;
  const uid = process.getuid?.() ?? -1;
  return (info.uid === uid || info.uid === 0) && (info.mode & 0o022) === 0;
}

async function readIfReadable(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch(() => undefined);
}

async function readOrFail(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `Cannot read ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}
