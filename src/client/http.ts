import type { IncomingMessage } from 'node:http';
import type { TlsTrust } from './connection.ts';
import { ConnectionError } from './wire-errors.ts';

// Built-ins taken as CommonJS modules: an ESM `import` of node:http evaluates every export,
// which loads undici, worker_threads and zlib: a fifth of a CLI command's start-up. https (and
// with it TLS) is loaded only for an https:// server.
const httpRequest = process.getBuiltinModule('node:http').request;
const httpsRequest = (...args: Parameters<typeof httpRequest>) =>
  process.getBuiltinModule('node:https').request(...args);

export interface HttpRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly url: URL;
  /** A Unix socket to send the request over instead of the URL's host and port. */
  readonly socketPath?: string | null;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly signal?: AbortSignal;
  /** For https://: the CA to verify the server with and the client certificate. */
  readonly tls?: TlsTrust;
}

/**
 * One HTTP request through `node:http`, resolving with the response once its head arrived.
 * Not `fetch`: its body timeout would cut a quiet follow after five minutes.
 */
export function send(req: HttpRequest): Promise<IncomingMessage> {
  const request = req.url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { ...req.headers };
  if (req.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(req.body));
  }
  return new Promise((resolve, reject) => {
    const socketPath = req.socketPath ?? undefined;
    const tls = req.url.protocol === 'https:' ? tlsOptions(req.tls) : {};
    const clientRequest = request(
      req.url,
      { method: req.method, headers, signal: req.signal, ...(socketPath ? { socketPath } : {}), ...tls },
      resolve,
    );
    clientRequest.on('error', (error: NodeJS.ErrnoException) => {
      if (error.name === 'AbortError') reject(error);
      else {
        const message = isVerifyError(error)
          ? describeVerifyError(req.url, req.tls, error)
          : describeNetworkError(req.url, socketPath, error);
        reject(new ConnectionError(message, { cause: error }));
      }
    });
    clientRequest.end(req.body);
  });
}

export async function readBody(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** TLS 1.3, the server always verified (Node's default), the client certificate when there is one. */
function tlsOptions(trust: TlsTrust | undefined): Record<string, unknown> {
  return {
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    ...(trust?.ca ? { ca: trust.ca } : {}),
    ...(trust?.cert !== undefined && trust.key !== undefined ? { cert: trust.cert, key: trust.key } : {}),
  };
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
  const where = socketPath === undefined ? url.origin : `its socket ${socketPath}`;
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
