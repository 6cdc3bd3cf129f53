/**
 * One HTTP/1.1 request whose answer is read whole (every REST call of the CLI and the library but
 * the output stream), written straight onto a `node:net` or `node:tls` socket: one connection per
 * request (`Connection: close`), no keep-alive, no pipelining.
 *
 * Why by hand and not through `node:http`: a CLI command is a whole process, and loading and
 * setting up node:http's client (its agent, ClientRequest and IncomingMessage streams, the
 * llhttp parser) cost a `jobworker status ID` about a quarter of a bare `node -e 0` on the
 * development machine (docs/performance.md: a bare node:http GET 1.43x `node -e 0`, the same GET on
 * node:net 1.16x), which was what stood between the command and its budget of 1.5x. What it
 * replaces is small: write a request head, parse one answer (http1-response-parser.ts). Streams
 * (`openOutputFrames`, the cluster's proxy) stay on node:http (http.ts), where its flow control
 * matters and the start-up cost is paid once.
 */
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { type HttpRequest, requestHeaders, tlsOptions } from './http.ts';
import { Http1ResponseParser, type HttpAnswer, MalformedResponseError } from './http1-response-parser.ts';
import { connectionError, serverPlace } from './network-errors.ts';
import { ConnectionError, ProtocolError } from './wire-errors.ts';

export type { HttpAnswer };

/** Sends `req` and resolves with the whole answer, whatever its status; rejects with ConnectionError or ProtocolError. */
export function exchange(req: HttpRequest): Promise<HttpAnswer> {
  const socketPath = req.socketPath ?? undefined;
  return new Promise((resolve, reject) => {
    const head = requestHead(req);
    if (req.signal?.aborted) {
      reject(req.signal.reason);
      return;
    }
    const socket = open(req.url, socketPath, req.tls);
    const parser = new Http1ResponseParser(req.method);
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      req.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      outcome();
    };
    const onAbort = () => settle(() => reject(req.signal?.reason));
    req.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('data', (chunk: Buffer) => {
      try {
        const answer = parser.push(chunk);
        if (answer !== undefined) settle(() => resolve(answer));
      } catch (error) {
        settle(() => reject(protocolError(req, socketPath, error)));
      }
    });
    // An error answer whose body was cut short is still answered with its status.
    const cutShort = (error: () => Error) => {
      const head = parser.errorHead();
      settle(() => (head ? resolve(head) : reject(error())));
    };
    socket.on('end', () => {
      const answer = parser.end();
      if (typeof answer !== 'string') settle(() => resolve(answer));
      else {
        const message = `Lost the connection to the server at ${serverPlace(req.url, socketPath)}: it closed the connection ${answer}`;
        cutShort(() => new ConnectionError(message));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) =>
      cutShort(() => connectionError(req.url, socketPath, req.tls, error)),
    );
    // A connection that closed without an `end` (destroyed by the peer's reset after `error`, or
    // by TLS): whatever came first has settled already.
    socket.on('close', () =>
      cutShort(
        () => new ConnectionError(`Lost the connection to the server at ${serverPlace(req.url, socketPath)}`),
      ),
    );
    // Written at once: the socket holds it until it is connected (and, over TLS, until the
    // handshake). Not `end()`: a half-closed connection is one some servers (and TLS) take for a
    // whole close before answering.
    socket.write(head);
  });
}

function open(url: URL, socketPath: string | undefined, trust: HttpRequest['tls']): Socket {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.protocol !== 'https:') {
    const net = process.getBuiltinModule('node:net');
    return socketPath === undefined
      ? net.connect({ host, port: Number(url.port || 80) })
      : net.connect({ path: socketPath });
  }
  const tls = process.getBuiltinModule('node:tls');
  const net = process.getBuiltinModule('node:net');
  // As node:https does: SNI names a host, never an address; the certificate is checked against
  // `servername`, else `host` (an address).
  const options: ConnectionOptions = {
    host,
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
    ALPNProtocols: ['http/1.1'],
    ...tlsOptions(trust),
  };
  return socketPath === undefined
    ? tls.connect({ ...options, port: Number(url.port || 443) })
    : tls.connect({ ...options, path: socketPath });
}

/** The request line and headers (and the body): one write. */
function requestHead(req: HttpRequest): Buffer {
  const headers = requestHeaders(req, { host: req.url.host, connection: 'close' });
  let text = `${req.method} ${req.url.pathname}${req.url.search} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    // A line break in a value (a token pasted with its newline) would split the request; other
    // control characters are refused as node:http refuses them. The value is not quoted: it may be
    // a token.
    if (/[^!#$%&'*+.^_`|~0-9A-Za-z-]/.test(name)) {
      throw new TypeError(
        `Expected a header name of letters, digits and !#$%&'*+.^_\`|~-, got ${JSON.stringify(name)}`,
      );
    }
    if (/[^\t\x20-\x7e\x80-\xff]/.test(value)) {
      throw new TypeError(
        `Expected the header \`${name}\` to be one line of printable characters; its value has a line break or another control character`,
      );
    }
    text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${text}\r\n${req.body ?? ''}`, 'utf8');
}

function protocolError(req: HttpRequest, socketPath: string | undefined, error: unknown): unknown {
  if (!(error instanceof MalformedResponseError)) return error;
  return new ProtocolError(
    `${error.message} (from ${serverPlace(req.url, socketPath)}: an https:// server behind an http:// URL?)`,
    { cause: error },
  );
}
