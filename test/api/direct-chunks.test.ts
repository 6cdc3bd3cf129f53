import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DirectChunks, framedChunk, framedText } from '../../src/api/rest/direct-chunks.ts';

/** Sends `request` on a fresh connection and resolves with everything the server sent until it closed. */
async function exchange(port: number, request: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const parts: Buffer[] = [];
  socket.on('data', (part: Buffer) => parts.push(part));
  socket.end(request);
  await once(socket, 'close');
  return Buffer.concat(parts).toString('latin1');
}

/** The body of a chunked HTTP/1.1 response (after its head), parsed strictly: chunks, then trailers. */
function parseChunked(response: string): { chunks: string[]; trailers: string } {
  let rest = response.slice(response.indexOf('\r\n\r\n') + 4);
  const chunks: string[] = [];
  for (;;) {
    const eol = rest.indexOf('\r\n');
    assert.ok(eol > 0, `a chunk size line in ${JSON.stringify(rest.slice(0, 40))}`);
    const size = Number.parseInt(rest.slice(0, eol), 16);
    rest = rest.slice(eol + 2);
    if (size === 0) return { chunks, trailers: rest };
    chunks.push(rest.slice(0, size));
    assert.equal(rest.slice(size, size + 2), '\r\n', 'each chunk ends with CRLF');
    rest = rest.slice(size + 2);
  }
}

describe('DirectChunks: a chunked body written straight to its socket', () => {
  let server: Server;
  let port: number;
  let handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  before(async () => {
    server = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => res.destroy(err as Error));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  it('frames parts as one HTTP/1.1 chunk in one buffer, and text by its length in UTF-8 bytes', () => {
    const chunk = framedChunk([Buffer.from('hello, '), Buffer.from('world\n')]);
    assert.equal(chunk.toString('latin1'), 'd\r\nhello, world\n\r\n');
    assert.throws(() => framedChunk([]), RangeError);
    assert.throws(() => framedChunk([Buffer.alloc(0)]), RangeError);
    assert.equal(framedText('data: é\n\n').toString('utf8'), 'a\r\ndata: é\n\n\r\n');
    assert.throws(() => framedText(''), RangeError);
  });

  it('writes through the socket, one write per chunk framed once per shared read, and Node ends the body after it', async () => {
    const socketWrites: Buffer[] = [];
    handle = async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', Trailer: 'X-End' });
      res.flushHeaders();
      const direct = DirectChunks.for(res);
      assert.ok(direct, 'a live chunked response gets a direct writer');
      const socket = res.socket!;
      const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
      socket.write = ((chunk: Buffer, ...rest: unknown[]) => {
        socketWrites.push(chunk);
        return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof socket.write;
      const signal = new AbortController().signal;
      const line = Buffer.from('a line every follower gets\n');
      const read = [line]; // one shared read's events, as two followers get them
      await direct.write([line], signal, read);
      await direct.write([line], signal, read);
      await direct.write([Buffer.from('out,'), Buffer.from('err')], signal);
      await direct.writeText('event: é\n', signal);
      await direct.write([Buffer.alloc(0)], signal); // nothing: an empty chunk would end the body
      await direct.writeText('', signal);
      socket.write = write as typeof socket.write;
      res.addTrailers({ 'X-End': '4' });
      res.end();
    };
    const response = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(response, /\r\nTransfer-Encoding: chunked\r\n/i);
    const { chunks, trailers } = parseChunked(response);
    assert.deepEqual(chunks, [
      'a line every follower gets\n',
      'a line every follower gets\n',
      'out,err',
      Buffer.from('event: é\n').toString('latin1'),
    ]);
    assert.equal(trailers, 'X-End: 4\r\n\r\n');
    assert.deepEqual(
      socketWrites.map((chunk) => chunk.length),
      [33, 33, 12, 15],
      'one socket write per chunk, framed',
    );
    assert.equal(socketWrites[0], socketWrites[1], 'the same read is framed once, into one buffer');
  });

  it('lets bytes Node still holds in the response go first, by writing through it', async () => {
    handle = async (_req, res) => {
      res.writeHead(200);
      res.flushHeaders();
      const direct = DirectChunks.for(res);
      assert.ok(direct);
      res.cork(); // Node now holds the next write in the response itself
      res.write('first ');
      await direct.write([Buffer.from('second')], new AbortController().signal);
      res.uncork();
      res.end();
    };
    const response = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseChunked(response).chunks.join(''), 'first second');
  });

  it('is not had for a HEAD, for an HTTP/1.0 client (no chunks), nor before the headers went out', async () => {
    const seen: (DirectChunks | undefined)[] = [];
    handle = async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      const early = DirectChunks.for(res);
      res.flushHeaders();
      seen.push(early, DirectChunks.for(res));
      res.end();
    };
    await exchange(port, 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const old = await exchange(port, 'GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    assert.doesNotMatch(old, /chunked/i);
    await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.deepEqual(
      seen.map((writer) => writer !== undefined),
      [false, false, false, false, false, true],
      'HEAD: none; HTTP/1.0: none; GET/1.1: none before the headers, one after',
    );
  });

  it('waits for a full socket to drain: until the client reads, or until the signal aborts', async () => {
    for (const ending of ['client reads', 'signal aborts'] as const) {
      const controller = new AbortController();
      const { promise: reading, resolve: read } = Promise.withResolvers<void>();
      const { promise: done, resolve } = Promise.withResolvers<string>();
      handle = async (_req, res) => {
        res.writeHead(200);
        res.flushHeaders();
        const direct = DirectChunks.for(res)!;
        // The client reads nothing yet: the socket's buffers fill, and a write is left waiting.
        // Until one is still waiting a turn later: the kernel may take more meanwhile (its buffers
        // grow with the connection's window), which settled a write that had waited, under load.
        let settled: Promise<string> = Promise.resolve('settled');
        let before: unknown = 'settled';
        for (let i = 0; i < 64 && before === 'settled'; i++) {
          settled = direct
            .write([Buffer.alloc(4 * 1024 * 1024, 'y')], controller.signal)
            .then(() => 'settled');
          before = await Promise.race([settled, new Promise((r) => setImmediate(() => r('pending')))]);
        }
        if (ending === 'client reads') read();
        else controller.abort();
        resolve(`${before}, then ${await settled}`);
        res.destroy();
      };
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      socket.pause();
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      void reading.then(() => socket.resume());
      assert.equal(await done, 'pending, then settled', ending);
      socket.destroy();
    }
  });

  it('writes through Node once the socket takes no more writes (a client that half-closed)', async () => {
    const clientErrors: unknown[] = [];
    const onClientError = (err: unknown) => clientErrors.push(err);
    server.on('clientError', onClientError);
    const { promise: done, resolve } = Promise.withResolvers<void>();
    handle = async (_req, res) => {
      res.writeHead(200);
      res.flushHeaders();
      const direct = DirectChunks.for(res)!;
      res.socket!.end(); // what Node does when the client ends its side mid-response
      await direct.write([Buffer.from('late')], new AbortController().signal);
      resolve();
    };
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await done;
    socket.destroy();
    server.off('clientError', onClientError);
    assert.deepEqual(clientErrors, [], 'no write after end');
  });
});
