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
 * replaces is small: write a request head, parse one answer (http1-response-parser.ts). The
 * CLI's output stream goes through `openStream` below (two reused read buffers); the library's
 * streams and the cluster's proxy stay on node:http (http.ts), whose buffers a caller may keep.
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
        cutShort(() => lostConnection(req, socketPath, answer));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) =>
      cutShort(() => connectionError(req.url, socketPath, req.tls, error)),
    );
    // A connection that closed without an `end` (destroyed by the peer's reset after `error`, or
    // by TLS): whatever came first has settled already.
    socket.on('close', () => cutShort(() => lostConnection(req, socketPath)));
    // Written at once: the socket holds it until it is connected (and, over TLS, until the
    // handshake). Not `end()`: a half-closed connection is one some servers (and TLS) take for a
    // whole close before answering.
    socket.write(head);
  });
}

/**
 * Reads into the caller's buffers (`net.connect`'s `onread`): `buffer()` gives the one the next
 * read goes into (asked for once at the start and after each read), `callback` gets each read (a
 * view of that buffer, or over TLS a decrypted buffer of its own) and answers false to stop
 * reading.
 */
interface ReadInto {
  readonly buffer: () => Buffer;
  readonly callback: (data: Buffer) => boolean;
}

function open(url: URL, socketPath: string | undefined, trust: HttpRequest['tls'], into?: ReadInto): Socket {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.protocol !== 'https:') {
    const net = process.getBuiltinModule('node:net');
    const onread = into
      ? {
          onread: {
            buffer: into.buffer,
            callback: (length: number, buffer: Uint8Array) =>
              into.callback(Buffer.from(buffer.buffer, buffer.byteOffset, length)),
          },
        }
      : {};
    return socketPath === undefined
      ? net.connect({ host, port: Number(url.port || 80), ...onread })
      : net.connect({ path: socketPath, ...onread });
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
  const socket =
    socketPath === undefined
      ? tls.connect({ ...options, port: Number(url.port || 443) })
      : tls.connect({ ...options, path: socketPath });
  // TLS decrypts into buffers of its own, each handed on as it is.
  if (into) {
    socket.on('data', (chunk: Buffer) => {
      if (!into.callback(chunk)) socket.pause();
    });
  }
  return socket;
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

/** The connection ended before the answer did; `how`: what the parser says of where it was cut. */
function lostConnection(req: HttpRequest, socketPath: string | undefined, how?: string): ConnectionError {
  const where = `Lost the connection to the server at ${serverPlace(req.url, socketPath)}`;
  return new ConnectionError(how === undefined ? where : `${where}: it closed the connection ${how}`);
}

function protocolError(req: HttpRequest, socketPath: string | undefined, error: unknown): unknown {
  if (!(error instanceof MalformedResponseError)) return error;
  return new ProtocolError(
    `${error.message} (from ${serverPlace(req.url, socketPath)}: an https:// server behind an http:// URL?)`,
    { cause: error },
  );
}

/** An answer whose body is read as it comes (`openStream`). */
export interface StreamedAnswer extends Omit<HttpAnswer, 'body'> {
  /**
   * The body's pieces, each a view of one of the two read buffers: valid only until the next
   * piece is asked for (copy what must outlive that). Ends with the body; a connection lost
   * before then is a ConnectionError. Breaking out of the loop closes the connection.
   */
  readonly body: AsyncIterable<Buffer>;
  /** The trailers of a chunked body (lower-case names), once it ended. */
  readonly trailers: Readonly<Record<string, string>>;
  /** Closes the connection; the body then ends. */
  destroy(): void;
}

/**
 * Sends `req` and resolves once the answer's head arrived, its body to be read as it comes:
 * a catch-up read of hundreds of megabytes. The connection reads into two buffers of
 * `readBytes` in turn, and stops reading only while the one the next read would go into still
 * holds a piece not yet used, so nothing is allocated per read and the server is held back by the
 * kernel's flow control, not by this process's memory (node:http allocates a buffer per 64 KiB
 * read: `jobworker logs` read ~0.5 GB/s through it). Two, not one: with one, every read stopped
 * the socket and started it again once its pieces were used (two epoll changes and a turn of the
 * event loop per read); a reader that writes each piece out at once has used it before the next
 * read, so reading never stops (`jobworker logs ID > /dev/null` of 1 GiB through the Unix socket:
 * p50 322 -> 287 ms; over TCP no change).
 */
export function openStream(req: HttpRequest, readBytes: number): Promise<StreamedAnswer> {
  const socketPath = req.socketPath ?? undefined;
  // Over TLS each decrypted buffer is handed on as it is: no read buffers of our own.
  const buffers =
    req.url.protocol === 'https:' ? [] : [Buffer.allocUnsafe(readBytes), Buffer.allocUnsafe(readBytes)];
  /** Of each buffer, the pieces cut from it not yet used (handed out, or waiting to be). */
  const inUse = [0, 0];
  /** The buffer the next read goes into (or went into, for the read being handled). */
  let reading = 1;
  /** True while reading is stopped for want of a free buffer. */
  let held = false;
  const pieces: { data: Buffer; buffer: number }[] = [];
  let failure: Error | undefined;
  let finished = false;
  let wake: (() => void) | undefined;
  const {
    promise: headRead,
    resolve: resolveHead,
    reject: rejectHead,
  } = Promise.withResolvers<Omit<HttpAnswer, 'body'>>();
  const parser = new Http1ResponseParser(req.method, {
    onBody: (data) => {
      pieces.push({ data, buffer: reading });
      if (buffers.length > 0) inUse[reading] = (inUse[reading] ?? 0) + 1;
    },
  });
  const head = requestHead(req);
  const socket = open(req.url, socketPath, req.tls, {
    buffer: () => {
      reading = 1 - reading;
      return buffers[reading] ?? Buffer.alloc(0);
    },
    callback: (data) => {
      try {
        const answer = parser.push(data);
        // A later read reuses the buffer: what the parser keeps for it must not be in it.
        parser.detachPending();
        const answered = parser.head;
        if (answered) resolveHead(answered);
        if (answer !== undefined) finish();
      } catch (error) {
        fail(protocolError(req, socketPath, error) as Error);
      }
      wake?.();
      // The next read goes into the other buffer: only while none of its pieces is in use.
      // (Over TLS no piece is in a buffer of ours: hold reads while any waits to be used.)
      held = buffers.length === 0 ? pieces.length > 0 : (inUse[1 - reading] ?? 0) > 0;
      return !held;
    },
  });
  /** A piece was used: its buffer may take a read again; start reading if that waited for it. */
  const used = (piece: { buffer: number }): void => {
    if (buffers.length === 0) return;
    inUse[piece.buffer] = (inUse[piece.buffer] ?? 1) - 1;
    if (held && inUse[reading] === 0) {
      held = false;
      // A read stopped by `onread` leaves the stream flowing: pause first, so that resume reads.
      socket.pause();
      socket.resume();
    }
  };
  const finish = (): void => {
    finished = true;
    req.signal?.removeEventListener('abort', onAbort);
    socket.destroy();
  };
  /** Ends the answer with `error`; `drop`: the reader wants nothing more (it aborted, or closed it). */
  const fail = (error: Error, drop = false): void => {
    if (drop) pieces.length = 0;
    if (finished || failure) return;
    failure = error;
    rejectHead(error);
    finish();
    wake?.();
  };
  const onAbort = () => fail(req.signal?.reason as Error, true);
  if (req.signal?.aborted) onAbort();
  else req.signal?.addEventListener('abort', onAbort, { once: true });
  socket.on('end', () => {
    const answer = parser.end();
    if (typeof answer !== 'string') {
      resolveHead(answer);
      finish();
      wake?.();
    } else fail(lostConnection(req, socketPath, answer));
  });
  socket.on('error', (error: NodeJS.ErrnoException) =>
    fail(connectionError(req.url, socketPath, req.tls, error)),
  );
  socket.on('close', () => fail(lostConnection(req, socketPath)));
  // Flowing from the start (no `data` events with `onread`), so that the end of the connection
  // is seen even while no piece is asked for.
  socket.resume();
  socket.write(head);

  async function* body(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const piece = pieces.shift();
        if (piece !== undefined) {
          yield piece.data;
          used(piece);
          continue;
        }
        if (failure) throw failure;
        if (finished) return;
        if (buffers.length === 0 && held) {
          // Over TLS: every piece was used, read on.
          held = false;
          socket.resume();
        }
        const { promise, resolve } = Promise.withResolvers<void>();
        wake = resolve;
        await promise;
        wake = undefined;
      }
    } finally {
      if (!finished) fail(new ConnectionError('The answer was not read to its end'));
    }
  }
  return headRead.then((answered) => ({
    ...answered,
    body: body(),
    get trailers() {
      return parser.trailers;
    },
    destroy: () => fail(new ConnectionError('Closed by the client'), true),
  }));
}
