import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { Server, Socket } from 'node:net';

/** Requests in flight on an HTTP/1.1 connection, kept on the socket itself. */
const IN_FLIGHT = Symbol('jobworker.requestsInFlight');
/** The connection a response goes out on (its `socket` is gone by the time it emits `close`). */
const CONNECTION = Symbol('jobworker.connection');
type TrackedSocket = Socket & { [IN_FLIGHT]?: number };
type TrackedResponse = ServerResponse & { [CONNECTION]?: TrackedSocket };

/**
 * The connections of the server, HTTP/1.1 and HTTP/2 alike, for a graceful close: an HTTP/2
 * server has neither `closeIdleConnections` nor `closeAllConnections`, so they are tracked here.
 * An HTTP/1.1 connection is idle when no request is in flight on it; an HTTP/2 session is closed
 * with GOAWAY, which lets its open streams finish.
 */
export class ConnectionTracker {
  #count = 0;
  readonly #raw = new Set<Socket>();
  /** HTTP/1.1 connections (the TLS socket when secure); each counts its requests in flight. */
  readonly #http1 = new Set<TrackedSocket>();
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
    // Every request passes here: one listener function for all responses, and counts kept on
    // the sockets, instead of a closure, a once-wrapper and two map updates per request.
    const tracker = this;
    const onResponseClose = function (this: TrackedResponse): void {
      tracker.#responseClosed(this);
    };
    server.on('request', (req: IncomingMessage, res: TrackedResponse) => {
      if (req.httpVersionMajor !== 1) return;
      const socket = req.socket as TrackedSocket;
      socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 0) + 1;
      res[CONNECTION] = socket;
      res.on('close', onResponseClose);
    });
  }

  /** Open connections (TCP and Unix socket, before and after their TLS handshake). */
  get count(): number {
    return this.#count;
  }

  /** From now on a connection is closed as soon as it is idle; idle ones are closed now. */
  closeIdle(): void {
    this.#closing = true;
    for (const socket of this.#http1) this.#endIfIdle(socket);
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

  #responseClosed(res: TrackedResponse): void {
    const socket = res[CONNECTION];
    if (socket === undefined) return;
    res[CONNECTION] = undefined;
    const left = (socket[IN_FLIGHT] ?? 1) - 1;
    socket[IN_FLIGHT] = left;
    if (this.#closing && left === 0 && this.#http1.has(socket)) setImmediate(() => this.#endIfIdle(socket));
    this.#checkAnswered();
  }

  #checkAnswered(): void {
    if (this.#answered.length === 0) return;
    for (const socket of this.#http1) if ((socket[IN_FLIGHT] ?? 0) > 0) return;
    for (const resolve of this.#answered.splice(0)) resolve();
  }

  #addHttp1(socket: TrackedSocket): void {
    this.#http1.add(socket);
    socket.once('close', () => {
      this.#http1.delete(socket);
      this.#checkAnswered();
    });
    if (this.#closing) setImmediate(() => this.#endIfIdle(socket));
  }

  #endIfIdle(socket: TrackedSocket): void {
    if (this.#http1.has(socket) && (socket[IN_FLIGHT] ?? 0) === 0) socket.end();
  }
}
