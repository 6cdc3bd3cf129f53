import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/auth/tls/certificate-authority.ts';
import { NO_TLS } from '../../src/cli/connection.ts';
import { ApiClient } from '../../src/client/api-client.ts';
import { exchange, openStream } from '../../src/client/http1-client.ts';
import { Http1ResponseParser } from '../../src/client/http1-response-parser.ts';
import { ApiError, ConnectionError, ProtocolError } from '../../src/client/wire-errors.ts';

/**
 * The request/response client on node:net and node:tls (src/client/http1-client.ts), against real
 * servers on loopback: node:http's own server for what a real server sends, a raw TCP server for
 * what only a misbehaving one does.
 */

async function listen(server: Server): Promise<URL> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return new URL(`http://127.0.0.1:${address.port}/`);
}

async function closeServer(server: Server): Promise<void> {
  server.close();
  await once(server, 'close');
}

describe('exchange over plain HTTP', () => {
  let server: Server;
  let base: URL;
  const seen: { method?: string; url?: string; headers?: Record<string, unknown>; body?: string }[] = [];
  const routes: Record<string, RequestListener> = {
    '/length': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
    '/chunked': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // Two writes before the end: node:http sends them as two chunks.
      res.write('first ');
      res.write('second ');
      res.end('third');
    },
    '/error': (_req, res) =>
      res
        .writeHead(404, 'Not Found', { 'content-type': 'application/json' })
        .end('{"error":{"code":"NOT_FOUND","message":"No job with id x"}}'),
    '/empty': (_req, res) => res.writeHead(204).end(),
    '/job': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"x"}'),
    '/echo': (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(201, { 'content-type': 'application/json' }).end(body);
      });
    },
  };

  before(async () => {
    server = createHttpServer((req, res) => {
      // By the first segment: ApiClient's requests under /error/ get the error route.
      const route = routes[`/${new URL(req.url ?? '/', 'http://x').pathname.split('/')[1]}`];
      if (route) route(req, res);
      else res.writeHead(500).end();
    });
    base = await listen(server);
  });
  after(() => closeServer(server));

  it('reads a body framed by Content-Length', async () => {
    const answer = await exchange({ method: 'GET', url: new URL('length', base) });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal(answer.body.toString(), '{"ok":true}');
  });

  it('reads a chunked body', async () => {
    const answer = await exchange({ method: 'GET', url: new URL('chunked', base) });
    assert.equal(answer.headers['transfer-encoding'], 'chunked');
    assert.equal(answer.body.toString(), 'first second third');
  });

  it('answers an error status with its body, and ApiClient reads its JSON error', async () => {
    const answer = await exchange({ method: 'GET', url: new URL('error', base) });
    assert.equal(answer.status, 404);
    assert.equal(answer.statusMessage, 'Not Found');
    // The same error through both of ApiClient's transports.
    for (const oneShot of [true, false]) {
      const client = new ApiClient(connectionTo(new URL('error/', base)), { oneShot });
      await assert.rejects(client.getJob('x'), (error: ApiError) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.status, 404);
        assert.equal(error.code, 'NOT_FOUND');
        assert.equal(error.message, 'No job with id x');
        return true;
      });
    }
  });

  it("keeps one connection for a long-lived client's requests, and opens one per request for the CLI's", async () => {
    // Keep-alive: at most one new connection (Node's global agent may still hold one from a test before).
    for (const [oneShot, most] of [
      [false, 1],
      [true, 3],
    ] as const) {
      let connections = 0;
      const count = () => {
        connections++;
      };
      server.on('connection', count);
      const client = new ApiClient(connectionTo(new URL('job/', base)), { oneShot });
      for (let i = 0; i < 3; i++) assert.equal((await client.getJob('x')).id, 'x');
      server.off('connection', count);
      assert.ok(connections <= most, `${connections} connections with oneShot: ${oneShot}`);
      if (oneShot) assert.equal(connections, 3);
    }
  });

  it('reads an answer with no body (204)', async () => {
    const answer = await exchange({ method: 'POST', url: new URL('empty', base), body: '{}' });
    assert.equal(answer.status, 204);
    assert.equal(answer.body.length, 0);
  });

  it('sends the method, the path with its query, the headers and a JSON body', async () => {
    const body = JSON.stringify({ command: 'écho', args: ['a b'] });
    const answer = await exchange({
      method: 'POST',
      url: new URL('echo?x=1&y=%20', base),
      headers: { authorization: 'Bearer t0ken' },
      body,
    });
    assert.equal(answer.status, 201);
    assert.equal(answer.body.toString(), body);
    const last = seen.at(-1);
    assert.equal(last?.method, 'POST');
    assert.equal(last?.url, '/echo?x=1&y=%20');
    assert.equal(last?.headers?.authorization, 'Bearer t0ken');
    assert.equal(last?.headers?.['content-type'], 'application/json');
    assert.equal(last?.headers?.['content-length'], String(Buffer.byteLength(body)));
    assert.equal(last?.body, body);
  });

  it('refuses a header value with a line break instead of sending it', async () => {
    await assert.rejects(
      exchange({
        method: 'GET',
        url: new URL('length', base),
        headers: { authorization: 'Bearer a\r\nx: y' },
      }),
      (error: Error) => {
        assert.match(
          error.message,
          /Expected the header `authorization` to be one line of printable characters/,
        );
        // The value may be a token: it is not repeated in the message.
        assert.doesNotMatch(error.message, /Bearer/);
        return true;
      },
    );
    await assert.rejects(
      exchange({ method: 'GET', url: new URL('length', base), headers: { 'x-a': 'nul\u0000here' } }),
      /Expected the header `x-a` to be one line of printable characters/,
    );
  });
});

describe('exchange with a server that breaks HTTP or the connection', () => {
  let server: Server;
  let base: URL;
  /** What the raw server writes for each request line's path. */
  const replies: Record<string, (socket: Socket) => void> = {
    '/cut': (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789');
      socket.end();
    },
    '/cut-chunked': (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
      socket.end();
    },
    '/until-close': (socket) => {
      socket.write('HTTP/1.0 200 OK\r\n\r\nall of it');
      socket.end();
    },
    '/continue': (socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    },
    '/chunk-extension': (socket) => {
      socket.write(
        'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n',
      );
    },
    '/garbage': (socket) => {
      socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n');
    },
    '/silent': (socket) => socket.end(),
    '/cut-error': (socket) => cutError(socket),
    '/cut-error/v1/jobs/x': (socket) => cutError(socket),
  };
  function cutError(socket: Socket): void {
    socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 100\r\n\r\n{"error":');
    socket.end();
  }

  before(async () => {
    server = createTcpServer((socket) => {
      let head = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        head += chunk;
        if (!head.includes('\r\n\r\n')) return;
        const path = head.split(' ')[1] ?? '';
        replies[path]?.(socket);
      });
      socket.on('error', () => {});
    });
    base = await listen(server);
  });
  after(() => closeServer(server));

  it('names a connection that closed in the middle of the body, with how much came', async () => {
    await assert.rejects(exchange({ method: 'GET', url: new URL('cut', base) }), (error: ConnectionError) => {
      assert.ok(error instanceof ConnectionError);
      assert.match(error.message, /^Lost the connection to the server at http:\/\/127\.0\.0\.1:\d+: /);
      assert.match(error.message, /after 10 of the answer's 100 bytes/);
      return true;
    });
    await assert.rejects(
      exchange({ method: 'GET', url: new URL('cut-chunked', base) }),
      /after 5 bytes of the answer, before its last chunk/,
    );
    await assert.rejects(exchange({ method: 'GET', url: new URL('silent', base) }), /before it answered/);
  });

  it('answers an error status whose body was cut short with its status, through both transports', async () => {
    const answer = await exchange({ method: 'GET', url: new URL('cut-error', base) });
    assert.equal(answer.status, 503);
    assert.equal(answer.body.length, 0);
    for (const oneShot of [true, false]) {
      const client = new ApiClient(connectionTo(new URL('cut-error/', base)), { oneShot });
      await assert.rejects(client.getJob('x'), (error: ApiError) => {
        assert.ok(error instanceof ApiError, `oneShot ${oneShot}: ${String(error)}`);
        assert.equal(error.status, 503);
        assert.match(error.message, /HTTP 503 Service Unavailable/);
        return true;
      });
    }
  });

  it('reads a body that runs to the end of the connection, skips 1xx answers and chunk extensions', async () => {
    assert.equal(
      (await exchange({ method: 'GET', url: new URL('until-close', base) })).body.toString(),
      'all of it',
    );
    const continued = await exchange({ method: 'GET', url: new URL('continue', base) });
    assert.equal(continued.status, 200);
    assert.equal(continued.body.toString(), 'ok');
    const extended = await exchange({ method: 'GET', url: new URL('chunk-extension', base) });
    assert.equal(extended.body.toString(), 'abc');
  });

  it('rejects an answer that is not HTTP with a ProtocolError', async () => {
    await assert.rejects(exchange({ method: 'GET', url: new URL('garbage', base) }), (error: Error) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, /not HTTP\/1\.1: a status line "SSH-2\.0-OpenSSH_9\.6"/);
      return true;
    });
  });

  it('says plainly that nothing listens on a refused port', async () => {
    const closed = createTcpServer();
    const url = await listen(closed);
    await closeServer(closed);
    await assert.rejects(exchange({ method: 'GET', url }), (error: ConnectionError) => {
      assert.ok(error instanceof ConnectionError);
      assert.equal(
        error.message,
        `Cannot reach the server at ${url.origin}: connection refused (is \`jobworker serve\` running?)`,
      );
      return true;
    });
  });
});

describe('exchange over TLS 1.3', () => {
  // Distinct bytes at every position, many TLS records' worth.
  const BIG = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < BIG.length; i += 4) BIG.writeUInt32BE(i, i);
  let server: Server;
  let base: URL;
  let caPem: string;

  before(async () => {
    const now = new Date();
    const { ca } = await CertificateAuthority.create('test CA', now, 1);
    const pair = await ca.issueServer(['localhost', '127.0.0.1'], now, 1);
    caPem = ca.certPem;
    server = createHttpsServer(
      { cert: pair.certPem, key: pair.keyPem, minVersion: 'TLSv1.3' },
      (req, res) => {
        if (req.url === '/big') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(BIG);
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`over ${req.socket.constructor.name}`);
      },
    );
    const url = await listen(server);
    base = new URL(`https://localhost:${url.port}/`);
  });
  after(() => closeServer(server));

  it('verifies the server with the given CA, by host name and by address', async () => {
    const tls = { ...NO_TLS, ca: [caPem], caFiles: ['ca.pem'] };
    const byName = await exchange({ method: 'GET', url: base, tls });
    assert.equal(byName.body.toString(), 'over TLSSocket');
    const byAddress = await exchange({ method: 'GET', url: new URL(`https://127.0.0.1:${base.port}/`), tls });
    assert.equal(byAddress.status, 200);
  });

  it('streams a body over TLS too', async () => {
    const tls = { ...NO_TLS, ca: [caPem], caFiles: ['ca.pem'] };
    const answer = await openStream({ method: 'GET', url: base, tls }, 64 * 1024);
    const parts: Buffer[] = [];
    for await (const piece of answer.body) parts.push(Buffer.from(piece));
    assert.equal(Buffer.concat(parts).toString(), 'over TLSSocket');
  });

  it('streams a body of many records to a reader that keeps each piece over turns of the event loop, exact', async () => {
    const tls = { ...NO_TLS, ca: [caPem], caFiles: ['ca.pem'] };
    const answer = await openStream({ method: 'GET', url: new URL('/big', base), tls }, 64 * 1024);
    let at = 0;
    for await (const piece of answer.body) {
      for (let turn = 0; turn < 3; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
      assert.ok(piece.equals(BIG.subarray(at, at + piece.length)), `the piece at ${at}, held`);
      at += piece.length;
    }
    assert.equal(at, BIG.length);
  });

  it('refuses a server its CA does not vouch for, naming the CA it tried', async () => {
    await assert.rejects(exchange({ method: 'GET', url: base, tls: NO_TLS }), (error: ConnectionError) => {
      assert.ok(error instanceof ConnectionError);
      assert.match(error.message, /^Cannot verify the server at https:\/\/localhost:\d+: /);
      assert.match(error.message, /verified with the system's CAs/);
      return true;
    });
  });
});

function connectionTo(baseUrl: URL) {
  return {
    baseUrl,
    socketPath: null,
    local: true,
    token: null,
    tokenSource: 'none' as const,
    tokenFile: '/nonexistent/admin.token',
    tls: NO_TLS,
  };
}

describe('Http1ResponseParser with a body sink', () => {
  it('hands the body on as it comes and keeps the trailers, from one reused read buffer', () => {
    const body = 'x'.repeat(300);
    const wire = Buffer.from(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Status\r\n\r\n' +
        `64;ext=1\r\n${body.slice(0, 100)}\r\n${(200).toString(16)}\r\n${body.slice(100)}\r\n` +
        '0\r\nX-Status: succeeded\r\nX-Cursor: 300\r\n\r\n',
    );
    for (const size of [1, 3, 7, 64, wire.length]) {
      const pieces: Buffer[] = [];
      const parser = new Http1ResponseParser('GET', { onBody: (piece) => pieces.push(Buffer.from(piece)) });
      const reused = Buffer.alloc(size);
      let answer: ReturnType<Http1ResponseParser['push']>;
      for (let at = 0; at < wire.length; at += size) {
        const n = wire.copy(reused, 0, at, at + size);
        answer = parser.push(reused.subarray(0, n));
        parser.detachPending();
        // The next read overwrites the buffer: whatever the parser kept must survive it.
        reused.fill(0x21);
      }
      assert.equal(answer?.status, 200, `reads of ${size}`);
      assert.equal(parser.done, true);
      assert.equal(Buffer.concat(pieces).toString(), body, `reads of ${size}`);
      assert.equal(answer?.body.length, 0, 'the body went to the sink, not into the answer');
      assert.deepEqual(parser.trailers, { 'x-status': 'succeeded', 'x-cursor': '300' });
    }
  });
});

describe('openStream: a body read as it comes, into two reused buffers', () => {
  const MiB = 1024 * 1024;
  // Distinct bytes at every position, so that a piece overwritten by a later read shows.
  const body = Buffer.alloc(6 * MiB);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32BE(i, i);
  let server: Server;
  let base: URL;
  let cutAt = 0;
  before(async () => {
    server = createHttpServer((req, res) => {
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND"}}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-done' });
      // Many writes of odd sizes: chunks that no read lines up with.
      let at = 0;
      const more = (): void => {
        while (at < body.length) {
          const end = Math.min(at + 100_003, body.length);
          if (req.url === '/cut' && end > cutAt) {
            res.write(body.subarray(at, cutAt));
            res.socket?.destroy();
            return;
          }
          const room = res.write(body.subarray(at, end));
          at = end;
          if (!room) {
            res.once('drain', more);
            return;
          }
        }
        res.addTrailers({ 'x-done': 'yes' });
        res.end();
      };
      more();
    });
    base = await listen(server);
  });
  after(() => closeServer(server));

  it('hands every byte on exactly, each piece a view of one of two buffers, then the trailers', async () => {
    const answer = await openStream({ method: 'GET', url: new URL('/whole', base) }, 256 * 1024);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/octet-stream');
    let at = 0;
    const READ_BYTES = 256 * 1024;
    // The read buffers (a piece the parser had to join across two reads is a copy of its own).
    const buffers = new Set<ArrayBufferLike>();
    for await (const piece of answer.body) {
      // Checked before the next piece is asked for: it must be what was sent there.
      assert.ok(piece.equals(body.subarray(at, at + piece.length)), `the piece at ${at}`);
      at += piece.length;
      if (piece.buffer.byteLength === READ_BYTES) buffers.add(piece.buffer);
    }
    assert.equal(at, body.length);
    assert.equal(buffers.size, 2, 'two read buffers for the whole body, taken in turn');
    assert.deepEqual(answer.trailers, { 'x-done': 'yes' });
  });

  it('never reads into a piece that is held: a reader that keeps each piece over many turns of the event loop gets it intact', async () => {
    const answer = await openStream({ method: 'GET', url: new URL('/whole', base) }, 64 * 1024);
    let at = 0;
    let pieces = 0;
    for await (const piece of answer.body) {
      // Reads go on into the other buffer meanwhile; this piece's buffer must wait for it.
      for (let turn = 0; turn < 5; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
      assert.ok(piece.equals(body.subarray(at, at + piece.length)), `the piece at ${at}, held`);
      at += piece.length;
      pieces++;
    }
    assert.equal(at, body.length);
    assert.ok(pieces > 2, `read in ${pieces} pieces`);
    assert.deepEqual(answer.trailers, { 'x-done': 'yes' });
  });

  it('gives an error answer its head and body', async () => {
    const answer = await openStream({ method: 'GET', url: new URL('/missing', base) }, 64 * 1024);
    assert.equal(answer.status, 404);
    const parts: Buffer[] = [];
    for await (const piece of answer.body) parts.push(Buffer.from(piece));
    assert.match(Buffer.concat(parts).toString(), /NOT_FOUND/);
  });

  it('ends a body cut short with a ConnectionError, after the bytes that came', async () => {
    cutAt = 2 * MiB + 17;
    const answer = await openStream({ method: 'GET', url: new URL('/cut', base) }, 64 * 1024);
    let at = 0;
    await assert.rejects(
      (async () => {
        for await (const piece of answer.body) {
          assert.ok(piece.equals(body.subarray(at, at + piece.length)));
          at += piece.length;
        }
      })(),
      (error: Error) => error instanceof ConnectionError && /Lost the connection/.test(error.message),
    );
    assert.ok(at <= cutAt && at > 0, `${at} bytes came before the cut`);
  });

  it('stops at once when its signal is aborted mid-body, with the abort reason', async () => {
    const controller = new AbortController();
    const answer = await openStream(
      { method: 'GET', url: new URL('/whole', base), signal: controller.signal },
      64 * 1024,
    );
    const reason = new Error('the user pressed Ctrl-C');
    let afterAbort = 0;
    await assert.rejects(
      (async () => {
        for await (const _piece of answer.body) {
          if (controller.signal.aborted) afterAbort++;
          controller.abort(reason);
        }
      })(),
      reason,
    );
    assert.equal(afterAbort, 0, 'no piece handed out after the abort, not even one already read');
  });

  it('reads an answer whose head, chunk sizes and trailers are cut by reads of a few bytes', async () => {
    const small = body.subarray(0, 50_000);
    for (const framing of ['chunked', 'length', 'until-close'] as const) {
      const tiny = createHttpServer((_req, res) => {
        if (framing === 'length')
          res.writeHead(200, { 'content-length': small.length, 'x-pad': 'p'.repeat(300) });
        else if (framing === 'until-close') {
          // HTTP/1.0-style: no length, no chunks; the body ends with the connection.
          res.useChunkedEncodingByDefault = false;
          res.shouldKeepAlive = false;
          res.writeHead(200, { connection: 'close' });
        } else res.writeHead(200, { trailer: 'x-done', 'x-pad': 'p'.repeat(300) });
        for (let at = 0; at < small.length; at += 977) res.write(small.subarray(at, at + 977));
        if (framing === 'chunked') res.addTrailers({ 'x-done': 'yes' });
        res.end();
      });
      const url = await listen(tiny);
      try {
        for (const readBytes of [1, 3, 7, 64]) {
          const answer = await openStream({ method: 'GET', url }, readBytes);
          let at = 0;
          for await (const piece of answer.body) {
            assert.ok(
              piece.equals(small.subarray(at, at + piece.length)),
              `${framing}, reads of ${readBytes}: at ${at}`,
            );
            at += piece.length;
          }
          assert.equal(at, small.length, `${framing}, reads of ${readBytes}`);
          if (framing === 'chunked') assert.deepEqual(answer.trailers, { 'x-done': 'yes' });
        }
      } finally {
        await closeServer(tiny);
      }
    }
  });

  it('closes the connection when the reader breaks out of the body', async () => {
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const answer = await openStream({ method: 'GET', url: new URL('/whole', base) }, 64 * 1024);
    const [serverSide] = await accepted;
    // Not events.once: the server's socket may see the close as a reset ('error' first).
    const serverClosed = new Promise<void>((resolve) => {
      if (serverSide.destroyed) resolve();
      else serverSide.once('close', () => resolve());
    });
    for await (const _piece of answer.body) break;
    // The server sees the connection closed although it had megabytes left to send.
    await serverClosed;
  });
});
