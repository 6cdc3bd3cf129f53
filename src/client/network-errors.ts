import type { TlsTrust } from './connection.ts';
import { ConnectionError } from './wire-errors.ts';

/**
 * A failure to reach the server, or to keep talking to it, as one sentence that says where and
 * what to try: the same words from the node:http transport (http.ts) and the request/response
 * client (http1-client.ts).
 */
export function connectionError(
  url: URL,
  socketPath: string | undefined,
  trust: TlsTrust | undefined,
  error: NodeJS.ErrnoException,
): ConnectionError {
  const message = isVerifyError(error)
    ? describeVerifyError(url, trust, error)
    : describeNetworkError(url, socketPath, error);
  return new ConnectionError(message, { cause: error });
}

/** Where the server was looked for: its origin, or the Unix socket requests went over. */
export function serverPlace(url: URL, socketPath: string | undefined): string {
  return socketPath === undefined ? url.origin : `its socket ${socketPath}`;
}

const VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function isVerifyError(error: NodeJS.ErrnoException): boolean {
  return error.code !== undefined && VERIFY_CODES.has(error.code);
}

/** Which CA was tried and how to name another: there is no switch to skip the check. */
function describeVerifyError(url: URL, trust: TlsTrust | undefined, error: NodeJS.ErrnoException): string {
  const tried =
    (trust?.caFiles.length ?? 0) > 0
      ? `verified with ${trust?.caFiles.join(' and ')}`
      : "verified with the system's CAs (no --ca, no JOBWORKER_CA, no local <data-dir>/tls/ca.pem)";
  return (
    `Cannot verify the server at ${url.origin}: ${error.code} (${error.message}); ${tried}. ` +
    "Pass the server's CA with --ca FILE or JOBWORKER_CA (a server's own CA is <data-dir>/tls/ca.pem on its machine)"
  );
}

function describeNetworkError(
  url: URL,
  socketPath: string | undefined,
  error: NodeJS.ErrnoException,
): string {
  const where = serverPlace(url, socketPath);
  switch (error.code) {
    case 'ECONNREFUSED':
    case 'ENOENT':
      return `Cannot reach the server at ${where}: connection refused (is \`jobworker serve\` running?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Cannot reach the server at ${where}: unknown host ${url.hostname}`;
    case 'ECONNRESET':
      return `Lost the connection to the server at ${where}`;
    case 'EPROTO':
      return `Cannot talk to the server at ${where}: ${error.message.split('\n')[0]} (an http:// server behind an https:// URL, or a client certificate it refused?)`;
    default:
      return `Cannot reach the server at ${where}: ${error.code ?? error.message}`;
  }
}
