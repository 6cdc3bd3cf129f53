import type { IncomingMessage, ServerResponse } from 'node:http';

/** The server's side of `Expect: 100-continue`: Node's http and http2 servers both emit it. */
interface ContinueServer {
  on(event: 'checkContinue', listener: (request: IncomingMessage, response: ServerResponse) => void): unknown;
  emit(event: 'request', request: IncomingMessage, response: ServerResponse): boolean;
}

/**
 * Without a `checkContinue` listener Node answers `100 Continue` to every `Expect: 100-continue`
 * before the app sees the request, so a client announcing a body over the limit uploads it all
 * and only then gets 413. Here a `Content-Length` over `limit` gets no `100 Continue`: the
 * request goes on to the app, which answers 413 PAYLOAD_TOO_LARGE from the header alone (Fastify
 * checks it before reading) and closes the connection, so the body is never sent. Any other
 * request (a body within the limit, or of unknown length) is told to continue as before.
 */
export function answerExpectContinue(server: ContinueServer, limit: number): void {
  server.on('checkContinue', (request, response) => {
    const length = Number(request.headers['content-length']);
    if (!(length > limit)) response.writeContinue();
    server.emit('request', request, response);
  });
}
