import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConnectionTracker } from '../../src/api/rest/connection-tracker.ts';

describe('ConnectionTracker.requestsAnswered', () => {
  const held: ServerResponse[] = [];
  const arrived: (() => void)[] = [];
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('streaming');
    held.push(res);
    for (const resolve of arrived.splice(0)) resolve();
  });
  const tracker = new ConnectionTracker(server, false, () => {});
  let port = 0;
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    tracker.closeAll();
    server.close();
  });

  /** A GET the server holds open after its first bytes; resolves once the server has it. */
  async function held1(): Promise<{ res: ServerResponse; body: Promise<string>; destroy: () => void }> {
    const there = new Promise<void>((resolve) => arrived.push(resolve));
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false });
    const body = new Promise<string>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve(text));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    req.end();
    await there;
    return { res: held.at(-1)!, body, destroy: () => req.destroy() };
  }

  it('resolves at once with nothing in flight', async () => {
    await tracker.requestsAnswered();
  });

  it('waits for a held response to be written out whole, not just ended', async () => {
    const { res, body } = await held1();
    let answered = false;
    const waiting = tracker.requestsAnswered().then(() => {
      answered = true;
    });
    // Still in flight: a turn of the event loop changes nothing.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(answered, false);
    res.end(' and the end');
    await waiting;
    assert.equal(res.writableFinished, true, 'the last bytes were written before it resolved');
    assert.equal(await body, 'streaming and the end');
  });

  it('resolves when the client of a held response goes away', async () => {
    const { res, body, destroy } = await held1();
    body.catch(() => undefined);
    const waiting = tracker.requestsAnswered();
    destroy();
    await waiting;
    assert.equal(res.writableFinished, false);
  });
});

/** A server with its tracker on a loopback port, closed (connections cut) when the test ends. */
async function trackedServer(
  t: { after(fn: () => void): void },
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ tracker: ConnectionTracker; port: number }> {
  const server = createServer(handle);
  const tracker = new ConnectionTracker(server, false, () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    tracker.closeAll();
    server.close();
  });
  return { tracker, port: (server.address() as AddressInfo).port };
}

/** A raw keep-alive connection: its socket, what it received so far, and a promise of its end. */
async function rawConnection(port: number) {
  const socket = new Socket();
  socket.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  return { socket, received: () => text, ended: once(socket, 'close') };
}

/** The text of a GET request on a kept-alive HTTP/1.1 connection. */
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe('ConnectionTracker.closeIdle', () => {
  it('ends an idle keep-alive connection at once and a busy one once its response is written', async (t) => {
    const held: ServerResponse[] = [];
    let arrived: (() => void) | undefined;
    const { tracker, port } = await trackedServer(t, (req, res) => {
      if (req.url === '/hold') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('held');
        held.push(res);
        arrived?.();
      } else res.end('quick');
    });
    const idle = await rawConnection(port);
    idle.socket.write(get('/quick'));
    while (!idle.received().endsWith('quick')) await once(idle.socket, 'data');
    const busy = await rawConnection(port);
    const there = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    busy.socket.write(get('/hold'));
    await there;

    tracker.closeIdle();
    // On the server's side at once: the busy connection is neither ended nor cut.
    assert.equal(held[0]!.socket!.writableEnded, false);
    assert.equal(held[0]!.socket!.destroyed, false);
    await idle.ended;
    let busyEnded = false;
    void busy.ended.then(() => {
      busyEnded = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(busyEnded, false, 'the busy connection stays while its response is written');
    const answered = tracker.requestsAnswered();
    held[0]!.end(' and done');
    await answered;
    await busy.ended;
    assert.match(busy.received(), /held/);
    assert.match(busy.received(), / and done/);
  });
});

describe('ConnectionTracker and pipelined requests', () => {
  it('waits for every response received on a connection, and not for one destroyed while it waited', {
    timeout: 10_000,
  }, async (t) => {
    const held: ServerResponse[] = [];
    const handled: string[] = [];
    let both: (() => void) | undefined;
    const { tracker, port } = await trackedServer(t, (req, res) => {
      handled.push(req.url ?? '');
      if (req.url === '/hold') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('held');
        held.push(res);
      } else if (req.url === '/drop') {
        // Destroyed before it was ended while it waits behind /hold (the error path of a stream).
        res.destroy();
      } else res.end('after');
      if (handled.length === 3) both?.();
    });
    const client = await rawConnection(port);
    const handledAll = new Promise<void>((resolve) => {
      both = resolve;
    });
    client.socket.write(get('/hold') + get('/after') + get('/drop'));
    await handledAll;

    let answered = false;
    const waiting = tracker.requestsAnswered().then(() => {
      answered = true;
    });
    tracker.closeIdle();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(answered, false, '/hold and /after are still to be written');
    held[0]!.end(' and done');
    // Before: a response destroyed while it waited became the connection's response once the
    // ones ahead were written, never finished, and the close waited for its grace period.
    await waiting;
    await client.ended;
    assert.match(client.received(), /held/);
    assert.match(client.received(), / and done/);
    assert.match(client.received(), /after/);
  });
});
