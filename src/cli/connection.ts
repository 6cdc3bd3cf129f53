import { readFile, stat } from 'node:fs';
import { join } from 'node:path';
import { type Connection, isCleartextToNetwork, isLoopbackUrl, type TlsTrust } from '../client/connection.ts';
import { SOCKET_FILES } from '../core/socket-files.ts';
import { type CliEnvironment, DEFAULT_SERVER_URL } from './cli-env.ts';
import { UsageError } from './errors.ts';

export type { Connection };

import { resolveTlsTrust, type TlsFlags } from './tls-trust.ts';

/** The file the server writes its admin token to, in its data directory. */
const ADMIN_TOKEN_FILE = 'admin.token';

/**
 * `--server` wins over `JOBWORKER_URL`. With neither, the server's Unix socket in the data
 * directory is used when there is one, else `https://127.0.0.1:8080`. The token is
 * `JOBWORKER_TOKEN`; else, over the socket only and when no client certificate is given, the
 * admin token the server wrote into its data directory. It is never sent to a TCP port, loopback
 * or not: any local user may have bound that port, while only the data directory's owner can
 * make the socket in it. The socket's name says whether it speaks TLS (src/core/socket-files.ts).
 */
export async function resolveConnection(
  server: string | undefined,
  env: CliEnvironment,
  flags: TlsFlags & { cwd?: string } = {},
): Promise<Connection> {
  const tokenFile = join(env.dataDir, ADMIN_TOKEN_FILE);
  const fromEnv = env.token ?? null;
  const cwd = flags.cwd ?? process.cwd();
  if (server === undefined && env.url === undefined) {
    const tls = await resolveTlsTrust(flags, env, cwd);
    const socket = await findSocket(env.dataDir);
    if (socket !== null) {
      // Plain HTTP (a server with --insecure-http) presents no client certificate (one in ./cert,
      // say): the admin token goes in its stead, not nothing.
      const trust = socket.tls ? overOwnSocket(tls) : NO_TLS;
      const fromFile =
        fromEnv === null && trust.cert === undefined ? (await readText(tokenFile)).trim() || null : null;
      return {
        baseUrl: new URL(socket.tls ? 'https://localhost/' : 'http://localhost/'),
        tls: trust,
        socketPath: socket.path,
        local: true,
        token: fromEnv ?? fromFile,
        tokenSource: fromEnv !== null ? 'env' : fromFile !== null ? 'file' : 'none',
        tokenFile,
      };
    }
  }
  const baseUrl = parseServerUrl(server ?? env.url ?? DEFAULT_SERVER_URL, server === undefined);
  // Plain HTTP (a loopback server with --insecure-http) verifies nothing: the default CA and client
  // certificate files are not looked for (a few file reads on every command). Files named by a flag
  // or a variable are still read, so that a wrong one is still reported.
  const tls =
    baseUrl.protocol === 'http:' && !namesTlsFiles(flags, env)
      ? NO_TLS
      : await resolveTlsTrust(flags, env, cwd);
  return {
    baseUrl,
    socketPath: null,
    local: isLoopbackUrl(baseUrl),
    token: fromEnv,
    tokenSource: fromEnv !== null ? 'env' : 'none',
    tokenFile,
    tls,
  };
}

/** The trust of a connection over `http://` or a socket: no CA, no client certificate. */
export const NO_TLS: TlsTrust = {
  ca: undefined,
  caFiles: [],
  caExplicit: false,
  cert: undefined,
  key: undefined,
  certFile: undefined,
};

function namesTlsFiles(flags: TlsFlags, env: TlsFlags): boolean {
  return [flags.ca, flags.cert, flags.key, env.ca, env.cert, env.key].some((file) => file !== undefined);
}

/**
 * The server's socket in `dataDir` and whether it speaks TLS, by its name; null when there is
 * none (or the data directory cannot be read). Should both be there (a server of an earlier
 * version, which knew only `server.sock`, run after a killed `--insecure-http` one), the TLS one
 * is the one a server made last: a server of this version removes both at its start.
 */
async function findSocket(dataDir: string): Promise<{ path: string; tls: boolean } | null> {
  const tlsPath = join(dataDir, SOCKET_FILES.tls);
  const plainPath = join(dataDir, SOCKET_FILES.plain);
  const [tls, plain] = await Promise.all([isSocket(tlsPath), isSocket(plainPath)]);
  if (tls) return { path: tlsPath, tls: true };
  return plain ? { path: plainPath, tls: false } : null;
}

/**
 * The trust over the server's own TLS socket: the client certificate, if any, still authenticates
 * the caller, but the server is not checked against a CA. The socket is what proves who serves
 * it: only the data directory's owner (the server's account) or root can have made it there,
 * and any CA the CLI could check it with (`<data-dir>/tls/ca.pem`) lies in that same directory,
 * so the check would add nothing; the admin token goes over the plain socket on the same ground.
 * And it would fail a server with `--tls-cert`, whose certificate (also on the socket) is the
 * operator's: neither from that CA nor naming `localhost`.
 */
function overOwnSocket(tls: TlsTrust): TlsTrust {
  return { ...tls, ca: undefined, caFiles: [], caExplicit: false, ownSocket: true };
}

// The callback API of node:fs, which Node has loaded already: node:fs/promises would load a
// dozen more built-in modules into every CLI command.
function isSocket(path: string): Promise<boolean> {
  // false: none, or a data directory this user cannot read
  return new Promise((resolve) => stat(path, (err, stats) => resolve(err === null && stats.isSocket())));
}

/** The file's text; '' when it cannot be read. */
function readText(path: string): Promise<string> {
  return new Promise((resolve) => readFile(path, 'utf8', (err, text) => resolve(err === null ? text : '')));
}

/**
 * The Job Worker design's `--address host:port` as a server URL: always https://, since that
 * design's client speaks TLS only (`[::1]:8080` for IPv6).
 */
export function addressUrl(address: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(address);
  if (!match || Number(match[2]) > 65535) {
    throw new UsageError(
      `Expected --address to be host:port, such as 127.0.0.1:8080, got ${JSON.stringify(address)}`,
    );
  }
  return `https://${match[1]}:${match[2]}`;
}

export function parseServerUrl(text: string, fromEnv: boolean): URL {
  const source = fromEnv ? 'JOBWORKER_URL' : '--server';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `Expected ${source} to be a URL like https://127.0.0.1:8080, got ${JSON.stringify(text)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Expected ${source} to be an http:// or https:// URL, got ${JSON.stringify(text)}`);
  }
  if (isCleartextToNetwork(url)) {
    throw new UsageError(
      `Expected ${source} to be an https:// URL for a server on another machine, got ${JSON.stringify(text)}: ` +
        'plain HTTP would send the token in clear text (a server serves it on loopback only)',
    );
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}
