import { isLoopbackHost } from '../core/loopback.ts';

/**
 * What the REST transport needs to reach a server: where it is, the token, and the TLS trust.
 * The CLI resolves one from its flags and environment (src/cli/connection.ts), the library from
 * `ClientOptions` (client-options.ts).
 */

/** Where the server is and how to authenticate to it. */
export interface Connection {
  /** The URL requests are made against; `http://localhost/` when they go over `socketPath`. */
  readonly baseUrl: URL;
  /** The server's Unix socket in the data directory, when requests go over it; else null. */
  readonly socketPath: string | null;
  /** True when the server is on this machine (its socket, or a loopback address). */
  readonly local: boolean;
  readonly token: string | null;
  /** Where the token came from, for error hints. */
  readonly tokenSource: 'env' | 'file' | 'none';
  /** The admin token file of the local data directory (read only when talking over its socket). */
  readonly tokenFile: string;
  /** The CA that verifies the server and the client certificate, for an https:// server. */
  readonly tls: TlsTrust;
}

/** How a client verifies the server and, optionally, proves who it is with a certificate. */
export interface TlsTrust {
  /** PEM CA certificates to trust instead of the system's; undefined: the system's. */
  readonly ca: readonly string[] | undefined;
  /** The files `ca` came from, for error messages. */
  readonly caFiles: readonly string[];
  /** True when `--ca`/`JOBWORKER_CA` named the CA (no other is tried). */
  readonly caExplicit: boolean;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly certFile: string | undefined;
  /**
   * True over the server's TLS socket found in the local data directory (the CLI's): the server is
   * not checked against a CA, since the socket's place proves who serves it
   * (src/cli/connection.ts says why). Never set from a user's input.
   */
  readonly ownSocket?: boolean;
}

/** True for `localhost`, 127.0.0.0/8 and ::1: a server whose data directory is on this machine. */
export function isLoopbackUrl(url: URL): boolean {
  return isLoopbackHost(url.hostname);
}

/**
 * Whether a request to `url` would cross a network in clear text: plain HTTP to a host other than
 * loopback. A token, a job's spec (its environment too) and its output must not, so the CLI and
 * the library both refuse such a URL; the server serves plain HTTP on loopback only
 * (`--insecure-http`), so nothing that works is refused.
 */
export function isCleartextToNetwork(url: URL): boolean {
  return url.protocol === 'http:' && !isLoopbackUrl(url);
}
