import type { IncomingMessage } from 'node:http';
import type { ConnectionOptions } from 'node:tls';
import type { TlsTrust } from './connection.ts';
import type { HttpAnswer } from './http1-response-parser.ts';
import { connectionError } from './network-errors.ts';

// Built-ins taken as CommonJS modules, on first use: an ESM `import` of node:http evaluates every
// export, which loads undici, worker_threads and zlib; and a CLI command that makes only plain
// requests (http1-client.ts) loads no node:http at all. https (and with it TLS) is loaded only for
// an https:// server.
type RequestOptions = import('node:http').RequestOptions;
type OnResponse = (response: IncomingMessage) => void;
const httpRequest = (url: URL, options: RequestOptions, onResponse: OnResponse) =>
  process.getBuiltinModule('node:http').request(url, options, onResponse);
const httpsRequest = (url: URL, options: RequestOptions, onResponse: OnResponse) =>
  process.getBuiltinModule('node:https').request(url, options, onResponse);

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
 * One HTTP request through `node:http`, resolving with the response once its head arrived: for
 * an answer read as a stream (a job's output; the cluster's proxying). A request whose answer is
 * read whole goes through http1-client.ts instead. Not `fetch`: its body timeout would cut a quiet
 * follow after five minutes.
 */
export function send(req: HttpRequest): Promise<IncomingMessage> {
  const request = req.url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers = requestHeaders(req);
  return new Promise((resolve, reject) => {
    const socketPath = req.socketPath ?? undefined;
    const tls = req.url.protocol === 'https:' ? tlsOptions(req.tls) : {};
    const clientRequest = request(
      req.url,
      { method: req.method, headers, signal: req.signal, ...(socketPath ? { socketPath } : {}), ...tls },
      resolve,
    );
    clientRequest.on('error', (error: NodeJS.ErrnoException) => {
      reject(error.name === 'AbortError' ? error : connectionError(req.url, socketPath, req.tls, error));
    });
    clientRequest.end(req.body);
  });
}

/** One request through `node:http` (its keep-alive agent), the answer read whole. */
export async function sendWhole(req: HttpRequest): Promise<HttpAnswer> {
  const response = await send(req);
  const status = response.statusCode ?? 0;
  const body = await readBody(response).catch((error: NodeJS.ErrnoException) => {
    // An error answer cut short still says its status; a success cut short is a lost connection.
    if (status >= 300) return Buffer.alloc(0);
    throw connectionError(req.url, req.socketPath ?? undefined, req.tls, error);
  });
  return { status, statusMessage: response.statusMessage ?? '', headers: flatHeaders(response), body };
}

/** A response's headers as one string each (lower-case names; a repeated one's values joined by ", "). */
export function flatHeaders(response: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/**
 * A body read whole. `borrowed`: each piece is valid only until the next is read (a reused read
 * buffer, `openStream`), so each is copied as it comes.
 */
export async function readBody(body: AsyncIterable<Buffer>, borrowed = false): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(borrowed ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** The request's headers, with the JSON body's type and length when it has one (both clients). */
export function requestHeaders(
  req: HttpRequest,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const headers: Record<string, string> = { ...extra, ...req.headers };
  if (req.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(req.body));
  }
  return headers;
}

/**
 * TLS 1.3, the server always verified (Node's default) but over the server's own socket
 * (`ownSocket`), the client certificate when there is one: for node:https and for the request
 * client's own `tls.connect` alike.
 */
export function tlsOptions(trust: TlsTrust | undefined): ConnectionOptions {
  return {
    minVersion: 'TLSv1.3',
    rejectUnauthorized: trust?.ownSocket !== true,
    ...(trust?.ca ? { ca: [...trust.ca] } : {}),
    ...(trust?.cert !== undefined && trust.key !== undefined ? { cert: trust.cert, key: trust.key } : {}),
  };
}
