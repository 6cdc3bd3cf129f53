import type { ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import type { Server, Socket } from 'node:net';

/**
 * An HTTP/1.1 connection, with the response Node's HTTP server is writing on it: `_httpMessage`,
 * set when a request's response is assigned the socket (before its `request` event; a request
 * pipelined behind it waits with its response unassigned) and cleared once that response has
 * been written out whole (undocumented, stable since Node's first releases, and what graceful-
 * close packages such as http-terminator read). It stays set on a connection that dies mid-
 * response: the socket's own `close` covers that. Reading it when the server closes, instead of
 * counting every request as it comes and goes, took a listener and its bookkeeping off every
 * request: 0.93x of the server's CPU per `GET /v1/jobs/{id}` in a paired run (docs/performance.md).
 */
type Http1Socket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * The connections of the server, HTTP/1.1 and HTTP/2 alike, for a graceful close: an HTTP/2
 * server has no `closeAllConnections` (and `closeIdleConnections` only with `allowHTTP1`, for its
 * HTTP/1.1 connections), so they are tracked here.
 * An HTTP/1.1 connection is idle when no response is being written on it; an HTTP/2 session is
 * closed with GOAWAY, which lets its open streams finish.
 */
export class ConnectionTracker {
  readonly #raw = new Set<Socket>();
  /** HTTP/1.1 connections (the TLS socket when secure). */
  readonly #http1 = new Set<Http1Socket>();
  readonly #sessions = new Set<Http2Session>();
  /** Responses whose end `closeIdle` awaits to end their connection: one listener each. */
  readonly #ending = new WeakSet<ServerResponse>();
  /** Responses whose end `requestsAnswered` awaits: one listener each. */
  readonly #awaited = new WeakSet<ServerResponse>();
  #closing = false;
  readonly #onChange: () => void;
  /** Waiting for every HTTP/1.1 request in flight to be answered (`requestsAnswered`). */
  #answered: (() => void)[] = [];

  /** `secure`: connections speak HTTP after a TLS handshake (`secureConnection`), not at once. */
  constructor(server: Server, secure: boolean, onChange: () => void) {
    this.#onChange = onChange;
    server.on('connection', (socket: Socket) => {
      this.#raw.add(socket);
      socket.once('close', () => {
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
  }

  /** Open connections (TCP and Unix socket, before and after their TLS handshake). */
  get count(): number {
    return this.#raw.size;
  }

  /**
   * From now on a connection is closed as soon as it is idle; idle ones are closed now, busy ones
   * once their response (and those of requests already received behind it) has been written.
   */
  closeIdle(): void {
    this.#closing = true;
    for (const socket of this.#http1) this.#endWhenIdle(socket);
    for (const session of this.#sessions) session.close();
  }

  /**
   * Resolves once no HTTP/1.1 response is being written on any connection (a connection that
   * closes takes its requests with it). A stream the server ended is in flight until its last
   * bytes are written: closing the server before would cut them off (HTTP/2 streams end with
   * GOAWAY).
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
    for (const socket of this.#http1) {
      const response = socket._httpMessage;
      if (response && !neverFinishes(response)) {
        this.#afterResponse(response, this.#awaited, () => this.#checkAnswered());
        return;
      }
    }
    for (const resolve of this.#answered.splice(0)) resolve();
  }

  /** Ends an idle connection now, a busy one after its responses. */
  #endWhenIdle(socket: Http1Socket): void {
    if (!this.#http1.has(socket)) return;
    const response = socket._httpMessage;
    if (!response) socket.end();
    // Nothing will be written on it again.
    else if (neverFinishes(response)) socket.destroy();
    // Node gives the socket to a response pipelined behind this one as this one finishes, before
    // its `close`; the next turn is for what that `close` set off.
    else this.#afterResponse(response, this.#ending, () => setImmediate(() => this.#endWhenIdle(socket)));
  }

  /**
   * Calls `then` once `response` is done: closed (written out whole, or its connection gone), or,
   * for one that closed while it waited behind a pipelined response after it was ended, finished.
   * Not again when `watched` says it is already awaited for the same purpose.
   */
  #afterResponse(response: ServerResponse, watched: WeakSet<ServerResponse>, then: () => void): void {
    if (watched.has(response)) return;
    watched.add(response);
    response.once(response.closed ? 'finish' : 'close', () => {
      watched.delete(response);
      then();
    });
  }

  #addHttp1(socket: Http1Socket): void {
    this.#http1.add(socket);
    socket.once('close', () => {
      this.#http1.delete(socket);
      this.#checkAnswered();
    });
    if (this.#closing) setImmediate(() => this.#endWhenIdle(socket));
  }
}

/**
 * A response destroyed before it was ended while it waited behind a pipelined one: it emitted
 * `close` then, yet Node makes it the connection's `_httpMessage` once the one ahead is written,
 * and it never finishes (nothing will be written on that connection again). The handlers that
 * destroy a response on an error (the output, event and RPC streams) can leave one.
 */
function neverFinishes(response: ServerResponse): boolean {
  return response.closed && !response.writableEnded;
}
