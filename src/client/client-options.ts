import { ValidationError } from '../core/errors.ts';
import { type Connection, isCleartextToNetwork } from './connection.ts';

/** PEM text (a string or the bytes of a .pem file). */
export type Pem = string | Buffer;

/** A server at a URL, authenticated by a token (`jobworker token create`). */
export interface TokenOptions {
  readonly url: string;
  readonly token: string;
  /** The server's CA (its `<data-dir>/tls/ca.pem`); left out: the system's CAs. */
  readonly ca?: Pem;
}

/** A server at a URL, authenticated by a client certificate the server's CA issued (`jobworker certs issue`). */
export interface CertificateOptions {
  readonly url: string;
  readonly cert: Pem;
  readonly key: Pem;
  readonly ca?: Pem;
}

/**
 * A server on this machine through its Unix socket: `<data-dir>/server.sock`, which speaks TLS, or
 * `<data-dir>/server-http.sock` for a server run with `--insecure-http` (`RunningServer.socketPath`).
 */
export interface SocketOptions {
  readonly socketPath: string;
  /** The server's CA, `<data-dir>/tls/ca.pem`; null for `server-http.sock`. */
  readonly ca: Pem | null;
  readonly token: string;
}

/** Where the server is and how to prove who the caller is. There is no way to skip verifying the server. */
export type ClientOptions = (TokenOptions | CertificateOptions | SocketOptions) & {
  /**
   * How long `output` and `wait` keep reconnecting while the server cannot be reached (a
   * restart), counted from the last event received: whole milliseconds, 0 or more (0: not at
   * all). Default 60 s.
   */
  readonly reconnectForMs?: number;
};

/** Checks the options a caller may have built without types (from JSON, say). */
function validate(options: ClientOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw ValidationError.expected('options', 'an object with `url` or `socketPath`', options);
  }
  const has = (key: string) => (options as unknown as Record<string, unknown>)[key] !== undefined;
  if (has('cert') !== has('key')) {
    throw ValidationError.expected(has('cert') ? 'key' : 'cert', 'a PEM given with its pair', undefined);
  }
  if (!has('token') && !has('cert')) {
    throw ValidationError.expected('token', 'a token string (or `cert` and `key`)', undefined);
  }
  if (has('socketPath') && typeof (options as SocketOptions).socketPath !== 'string') {
    throw ValidationError.expected('socketPath', 'a path', (options as SocketOptions).socketPath);
  }
  // A string ('30s') or NaN made every deadline NaN: a follower that never gave up, reconnecting
  // every millisecond. Whole milliseconds, as every other `...Ms` of the API and the CLI's
  // --reconnect-for; 0 gives up at the first failure.
  const { reconnectForMs } = options;
  if (reconnectForMs !== undefined && !(Number.isSafeInteger(reconnectForMs) && reconnectForMs >= 0)) {
    throw ValidationError.expected(
      'reconnectForMs',
      'a non-negative integer of milliseconds',
      reconnectForMs,
    );
  }
}

function serverUrl(text: unknown): URL {
  let url: URL | null = null;
  if (typeof text === 'string' && URL.canParse(text)) url = new URL(text);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw ValidationError.expected('url', 'an http:// or https:// URL like https://127.0.0.1:8080', text);
  }
  // The CLI's rule for --server: a certificate, which plain HTTP could not present, is no way round it.
  if (isCleartextToNetwork(url)) {
    throw ValidationError.expected(
      'url',
      'an https:// URL for a server on another machine (plain HTTP would send the token and the ' +
        'jobs in clear text; a server serves it on loopback only)',
      text,
    );
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}

/** The options as the CLI's connection, whose request and TLS code the client shares. */
export function toConnection(options: ClientOptions): Connection {
  validate(options);
  const text = (pem: Pem | null | undefined) => (pem == null ? undefined : pem.toString());
  const ca = text(options.ca);
  const cert = 'cert' in options ? text(options.cert) : undefined;
  const key = 'key' in options ? text(options.key) : undefined;
  const token = 'token' in options ? options.token : null;
  const socketPath = 'socketPath' in options ? options.socketPath : null;
  const baseUrl =
    socketPath !== null
      ? new URL(options.ca === null ? 'http://localhost/' : 'https://localhost/')
      : serverUrl('url' in options ? options.url : undefined);
  // TLS presents a certificate; plain HTTP (a loopback server with --insecure-http) would send the
  // calls without it, unauthenticated, rather than as its holder: refused, not dropped unsaid.
  if (baseUrl.protocol === 'http:' && cert !== undefined) {
    throw ValidationError.expected(
      'cert',
      'no client certificate with a plain http:// server (only TLS presents one): an https:// url, or a token',
      '(a certificate)',
    );
  }
  return {
    baseUrl,
    socketPath,
    local: socketPath !== null,
    token,
    tokenSource: token === null ? 'none' : 'env',
    tokenFile: '',
    tls: {
      ca: ca === undefined ? undefined : [ca],
      caFiles: [],
      caExplicit: ca !== undefined,
      cert,
      key,
      certFile: undefined,
    },
  };
}
