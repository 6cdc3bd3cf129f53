import type { IncomingMessage } from 'node:http';
import { ConnectionError } from './errors.ts';

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
    const clientRequest = request(
      req.url,
      { method: req.method, headers, signal: req.signal, ...(socketPath ? { socketPath } : {}) },
      resolve,
    );
    clientRequest.on('error', (error: NodeJS.ErrnoException) => {
      if (error.name === 'AbortError') reject(error);
      else reject(new ConnectionError(describeNetworkError(req.url, socketPath, error), { cause: error }));
    });
    clientRequest.end(req.body);
  });
}

export async function readBody(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
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
    default:
      return `Cannot reach the server at ${where}: ${error.code ?? error.message}`;
  }
}
