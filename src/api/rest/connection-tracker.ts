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
  /** Waiting for every HTTP/1.1 request in flight to be answered (`requestsAnswered`). */
  #answered: (() => void)[] = [];

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
        this.#checkAnswered();
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

  /**
   * Resolves once no HTTP/1.1 request is in flight on any connection (a connection that closes
   * takes its requests with it). A stream the server ended is in flight until its last bytes are
   * written: closing the server before would cut them off (HTTP/2 streams end with GOAWAY).
   */
  requestsAnswered(): Promise<void> {
    return new Promise((resolve) => {
      this.#answered.push(resolve);
      this.#checkAnswered();
    });
  }

  /** Cuts every connection, busy or not. */
  closeAll(): void {
    this.#closing = true;
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#raw) socket.destroy();
  }

  #checkAnswered(): void {
    if (this.#answered.length === 0) return;
    for (const inFlight of this.#http1.values()) if (inFlight > 0) return;
    for (const resolve of this.#answered.splice(0)) resolve();
  }

  #addHttp1(socket: Socket): void {
    this.#http1.set(socket, 0);
    socket.once('close', () => {
      this.#http1.delete(socket);
      this.#checkAnswered();
    });
    if (this.#closing) setImmediate(() => this.#endIfIdle(socket));
  }

  #endIfIdle(socket: Socket): void {
    if (this.#http1.get(socket) === 0) socket.end();
  }
}
