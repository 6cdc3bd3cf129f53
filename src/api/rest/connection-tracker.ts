import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { Server, Socket } from 'node:net';

/**
 * The connections of the server, HTTP/1.1 and HTTP/2 alike, for a graceful close: an HTTP/2
 * server has neither `closeIdleConnections` nor `closeAllConnections`, so they are tracked here.
 * An HTTP/1.1 connection is idle when no request is in flight on it; an HTTP/2 session is closed
 * with GOAWAY, which lets its open streams finish.
 */
export class ConnectionTracker {
  #count = 0;
  readonly #raw = new Set<Socket>();
  /** HTTP/1.1 connections (the TLS socket when secure) and their requests in flight. */
  readonly #http1 = new Map<Socket, number>();
  readonly #sessions = new Set<Http2Session>();
  #closing = false;
  readonly #onChange: () => void;

  /** `secure`: connections speak HTTP after a TLS handshake (`secureConnection`), not at once. */
  constructor(server: Server, secure: boolean, onChange: () => void) {
    this.#onChange = onChange;
    server.on('connection', (socket: Socket) => {
      this.#count++;
      this.#raw.add(socket);
      socket.once('close', () => {
        this.#count--;
        this.#raw.delete(socket);
        this.#onChange();
      });
      if (!secure) this.#addHttp1(socket);
    });
    if (secure) {
      server.on('secureConnection', (socket: Socket & { alpnProtocol?: string | false }) => {
        if (socket.alpnProtocol !== 'h2') this.#addHttp1(socket);
      });
    }
    server.on('session', (session: Http2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#closing) session.close();
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.httpVersionMajor !== 1) return;
      const socket = req.socket;
      this.#http1.set(socket, (this.#http1.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const left = (this.#http1.get(socket) ?? 1) - 1;
        if (this.#http1.has(socket)) this.#http1.set(socket, left);
        if (this.#closing && left === 0) setImmediate(() => this.#endIfIdle(socket));
      });
    });
  }

  /** Open connections (TCP and Unix socket, before and after their TLS handshake). */
  get count(): number {
    return this.#count;
  }

  /** From now on a connection is closed as soon as it is idle; idle ones are closed now. */
  closeIdle(): void {
    this.#closing = true;
    for (const socket of this.#http1.keys()) this.#endIfIdle(socket);
    for (const session of this.#sessions) session.close();
  }

  /** Cuts every connection, busy or not. */
  closeAll(): void {
    this.#closing = true;
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#raw) socket.destroy();
  }

  #addHttp1(socket: Socket): void {
    this.#http1.set(socket, 0);
    socket.once('close', () => this.#http1.delete(socket));
    if (this.#closing) setImmediate(() => this.#endIfIdle(socket));
  }

  #endIfIdle(socket: Socket): void {
    if (this.#http1.get(socket) === 0) socket.end();
  }
}
