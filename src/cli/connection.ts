import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type CliEnvironment, DEFAULT_SERVER_URL } from './cli-env.ts';
import { UsageError } from './errors.ts';

/** Where the server is and how to authenticate to it. */
export interface Connection {
  readonly baseUrl: URL;
  readonly token: string | null;
  /** Where the token came from, for error hints. */
  readonly tokenSource: 'env' | 'file' | 'none';
  /** The admin token file that was looked at, when the server is local. */
  readonly tokenFile: string | null;
}

/**
 * `--server` wins over `JOBWORKER_URL`; the token is `JOBWORKER_TOKEN`, else, for a server on
 * this machine, the admin token file the server wrote into its data directory.
 */
export async function resolveConnection(
  server: string | undefined,
  env: CliEnvironment,
): Promise<Connection> {
  const baseUrl = parseServerUrl(server ?? env.url ?? DEFAULT_SERVER_URL, server === undefined);
  if (env.token !== undefined) {
    return { baseUrl, token: env.token, tokenSource: 'env', tokenFile: null };
  }
  if (!isLoopbackUrl(baseUrl)) return { baseUrl, token: null, tokenSource: 'none', tokenFile: null };
  const tokenFile = join(env.dataDir, 'admin.token');
  const token = (await readFile(tokenFile, 'utf8').catch(() => '')).trim();
  return token === ''
    ? { baseUrl, token: null, tokenSource: 'none', tokenFile }
    : { baseUrl, token, tokenSource: 'file', tokenFile };
}

export function parseServerUrl(text: string, fromEnv: boolean): URL {
  const source = fromEnv ? 'JOBWORKER_URL' : '--server';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `Expected ${source} to be a URL like http://127.0.0.1:8080, got ${JSON.stringify(text)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Expected ${source} to be an http:// or https:// URL, got ${JSON.stringify(text)}`);
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}

/** True for `localhost`, 127.0.0.0/8 and ::1: a server whose data directory is on this machine. */
export function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
}
