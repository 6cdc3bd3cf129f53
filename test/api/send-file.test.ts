import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, readFileSync } from 'node:fs';
import { type FileHandle, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { writeFrames } from '../../src/api/rest/output-writers.ts';
import { FileSender, loadSendFile, type SendFileAddon } from '../../src/api/rest/send-file.ts';
import { FRAME_KIND, FrameDecoder, MAX_FRAME_PAYLOAD } from '../../src/core/output-frames.ts';
import type { SpansEvent } from '../../src/service/job-service.ts';
import { openFdCount, within } from './api-harness.ts';

const MiB = 1024 * 1024;

function realAddon(): SendFileAddon {
  const loaded = loadSendFile();
  assert.ok('addon' in loaded, `expected the addon, got: ${'reason' in loaded ? loaded.reason : ''}`);
  return loaded.addon;
}

/**
 * The real addon, counting what it did: how many copies stopped on a full socket, and the most
 * copies in flight at once. `full` resolves at the first such stop, so a test can hold its client
 * back until the wait path has run. Given `refuseFirst`, the first copy is not made and answers
 * that errno instead, as the kernel does for a file it cannot copy from.
 */
function countingAddon(addon: SendFileAddon, refuseFirst?: number) {
  let fullStops = 0;
  let inFlight = 0;
  let mostInFlight = 0;
  let refused = refuseFirst === undefined;
  const widened: number[] = [];
  const { promise: full, resolve } = Promise.withResolvers<void>();
  const counted: SendFileAddon = {
    duplicate: (fd) => addon.duplicate(fd),
    widenSendBuffer: (fd, bytes) => {
      const size = addon.widenSendBuffer!(fd, bytes);
      widened.push(size);
      return size;
    },
    sendFile: async (...args) => {
      if (!refused) {
        refused = true;
        return { sent: 0, full: false, errno: refuseFirst! };
      }
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        const result = await addon.sendFile(...args);
        if (result.full) {
          fullStops++;
          resolve();
        }
        return result;
      } finally {
        inFlight--;
      }
    },
  };
  return {
    addon: counted,
    full,
    fullStops: () => fullStops,
    mostInFlight: () => mostInFlight,
    /** What each `widenSendBuffer` answered, in order. */
    widened: () => widened,
  };
}

/**
 * A client that asks the test server for its body and reads none of it until resumed: on its
 * port, or on its Unix socket.
 */
function askWithoutReading(where: number | string): Socket {
  const socket = typeof where === 'number' ? connect(where, '127.0.0.1') : connect(where);
  socket.pause();
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  return socket;
}

describe('FileSender: a response body sent from a file inside the kernel', () => {
  let dir: string;
  let path: string;
  let content: Buffer;
  let handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  const server = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      res.destroy(err as Error);
    });
  });
  let port: number;
  // The same responses on a Unix socket: a local CLI's way in.
  const localServer = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      res.destroy(err as Error);
    });
  });
  let socketPath: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-sendfile-'));
    path = join(dir, 'output');
    // More than loopback's socket buffers hold (a Unix socket's, widened: 4 MiB here, twice
    // net.core.wmem_max at most), so that a client that does not read fills them.
    content = randomBytes(24 * MiB);
    await writeFile(path, content);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    socketPath = join(dir, 'server.sock');
    localServer.listen(socketPath);
    await once(localServer, 'listening');
  });
  after(async () => {
    server.close();
    localServer.close();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Serves `prefix` and `content[from, from + length)` as one span, through `addon`. Settles with
   * what `send` answered once the response is closed and the sender and the file are given back.
   */
  function serveSpan(addon: SendFileAddon, from: number, length: number, prefix?: Buffer) {
    const outcome = Promise.withResolvers<boolean>();
    handler = async (_req, res) => {
      const closed = once(res, 'close');
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.flushHeaders();
      const sender = FileSender.for(res, addon);
      assert.ok(sender, 'a plain TCP response gets a sender');
      const file = await open(path, 'r');
      let result: { sent: boolean } | { error: unknown };
      try {
        const sent = await sender.send(prefix, file.fd, from, length);
        result = { sent };
        if (sent) res.end();
        else res.destroy();
      } catch (error) {
        result = { error };
        res.destroy();
      } finally {
        sender.close();
        await file.close();
      }
      await closed;
      if ('sent' in result) outcome.resolve(result.sent);
      else outcome.reject(result.error);
    };
    return outcome.promise;
  }

  function get(httpVersion = '1.1'): Promise<{ body: Buffer; headers: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('close', () => {
        const whole = Buffer.concat(chunks);
        const split = whole.indexOf('\r\n\r\n');
        resolve({ headers: whole.subarray(0, split).toString('latin1'), body: whole.subarray(split + 4) });
      });
      socket.on('error', reject);
      // Not end(): Node's server takes a half-closed connection for a client gone.
      socket.write(`GET / HTTP/${httpVersion}\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
  }

  it('sends the prefix and the stretch as one HTTP chunk, exact, the rest of the response after it', async () => {
    const prefix = Buffer.from('frame-header');
    const sent = serveSpan(realAddon(), 1234, 5 * MiB, prefix);
    const { body, headers } = await get();
    assert.equal(await sent, true);
    assert.match(headers, /transfer-encoding: chunked/i);
    const size = prefix.length + 5 * MiB;
    const expected = Buffer.concat([
      Buffer.from(`${size.toString(16)}\r\n`),
      prefix,
      content.subarray(1234, 1234 + 5 * MiB),
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    assert.ok(body.equals(expected), `the chunked body, exact (${body.length} of ${expected.length} bytes)`);
  });

  it('sends the bytes as they are to an HTTP/1.0 client (no chunks: the body ends with the connection)', async () => {
    const sent = serveSpan(realAddon(), 0, 3 * MiB);
    const { body, headers } = await get('1.0');
    assert.equal(await sent, true);
    assert.doesNotMatch(headers, /transfer-encoding/i);
    assert.ok(body.equals(content.subarray(0, 3 * MiB)), 'the raw bytes, exact');
  });

  for (const via of ['TCP', 'a Unix socket'] as const) {
    it(`waits for a client that does not read, through Node, and then sends the rest exactly (${via})`, async () => {
      const widened = await clientThatWaits(via === 'TCP' ? port : socketPath);
      // Asked once, at the first copy: a Unix socket's buffer grows (to twice what was asked, or
      // to twice net.core.wmem_max); TCP's is left to size itself.
      assert.equal(widened.length, 1);
      if (via === 'TCP') assert.equal(widened[0], 0);
      else
        assert.ok(widened[0]! >= expectedSendBuffer(2 * MiB), `a Unix socket's buffer, ${widened[0]} bytes`);
    });
  }

  /**
   * Serves the whole file to a client that reads nothing until a copy stopped on a full socket.
   * Resolves with what the sender's `widenSendBuffer` calls answered.
   */
  async function clientThatWaits(where: number | string): Promise<number[]> {
    const counting = countingAddon(realAddon());
    const sent = serveSpan(counting.addon, 0, content.length);
    const socket = askWithoutReading(where);
    // The socket filled up while this client read nothing: the copy handed the wait to Node.
    await within(counting.full, 10_000, 'a copy stopped on a full socket');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    await once(socket, 'close');
    assert.equal(await sent, true);
    assert.ok(counting.fullStops() >= 1);
    const whole = Buffer.concat(chunks);
    const body = whole.subarray(whole.indexOf('\r\n\r\n') + 4);
    const head = `${content.length.toString(16)}\r\n`;
    assert.equal(body.subarray(0, head.length).toString(), head);
    assert.ok(
      body.subarray(head.length, head.length + content.length).equals(content),
      'every byte, in order, across the waits',
    );
    assert.equal(body.subarray(head.length + content.length).toString(), '\r\n0\r\n\r\n');
    return counting.widened();
  }

  it('answers false when the client goes away mid-send, and gives its descriptor back', async () => {
    const fdsBefore = await openFdCount();
    const counting = countingAddon(realAddon());
    const sent = serveSpan(counting.addon, 0, content.length);
    const socket = askWithoutReading(port);
    await within(counting.full, 10_000, 'the socket filled up');
    // A reset, not a polite close: the server's next write finds the connection gone.
    socket.resetAndDestroy();
    assert.equal(await within(sent, 10_000, 'the send ended'), false);
    // Both ends are closed and the server gave back the file and its duplicate of the socket.
    assert.equal(await openFdCount(), fdsBefore, 'descriptors back to where they were');
  });

  it('copies from a duplicate: Node closing its socket never makes a copy write to another file', async () => {
    const addon = realAddon();
    const result = Promise.withResolvers<{ viaDuplicate: number; viaNodesNumber: number }>();
    handler = async (_req, res) => {
      const socket = res.socket!;
      const original = (socket as unknown as { _handle: { fd: number } })._handle.fd;
      const own = addon.duplicate(original);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.destroy();
      await closed;
      // Open files until one takes the number Node just closed (the lowest free number goes first).
      const opened: FileHandle[] = [];
      try {
        for (let i = 0; i < 64 && opened.at(-1)?.fd !== original; i++) {
          opened.push(await open(join(dir, `other-${i}`), 'w+'));
        }
        const other = opened.at(-1)!;
        assert.equal(other.fd, original, "a file took the socket's old number");
        const source = await open(path, 'r');
        try {
          await addon.sendFile(own, source.fd, 0, 100_000);
          const viaDuplicate = (await other.stat()).size;
          // What a copy on Node's own number would have done: written into that file.
          const { sent } = await addon.sendFile(original, source.fd, 0, 100);
          result.resolve({ viaDuplicate, viaNodesNumber: sent });
        } finally {
          await source.close();
        }
      } catch (error) {
        result.reject(error);
      } finally {
        for (const file of opened) await file.close();
        closeSync(own);
      }
    };
    await get().catch(() => undefined);
    const { viaDuplicate, viaNodesNumber } = await result.promise;
    assert.equal(viaDuplicate, 0, 'nothing was written into the file that took the closed number');
    assert.equal(viaNodesNumber, 100, "the same copy on Node's number lands in that file");
  });

  it('where the kernel cannot copy from a file, sends its bytes through Node, exact', async () => {
    const counting = countingAddon(realAddon(), 22 /* EINVAL */);
    const sent = serveSpan(counting.addon, 4096, 3 * MiB + 5);
    const { body } = await get();
    assert.equal(await sent, true);
    const head = `${(3 * MiB + 5).toString(16)}\r\n`;
    assert.equal(body.subarray(0, head.length).toString(), head);
    assert.ok(
      body
        .subarray(head.length, head.length + 3 * MiB + 5)
        .equals(content.subarray(4096, 4096 + 3 * MiB + 5)),
    );
  });

  /** The real addon with its duplicates counted, or refused with `refuse` (a -errno). */
  function duplicatesCounted(refuse?: number) {
    const addon = realAddon();
    let duplicates = 0;
    let copies = 0;
    const counted: SendFileAddon = {
      duplicate: (fd) => {
        duplicates++;
        return refuse ?? addon.duplicate(fd);
      },
      widenSendBuffer: (fd, bytes) => addon.widenSendBuffer!(fd, bytes),
      sendFile: (...args) => {
        copies++;
        return addon.sendFile(...args);
      },
    };
    return { addon: counted, duplicates: () => duplicates, copies: () => copies };
  }

  it('with an addon built before `widenSendBuffer` (a failed rebuild left it), sends the bytes all the same', async () => {
    const addon = realAddon();
    const stale: SendFileAddon = {
      duplicate: (fd) => addon.duplicate(fd),
      sendFile: (...args) => addon.sendFile(...args),
    };
    const sent = serveSpan(stale, 4321, 2 * MiB);
    const { body } = await get('1.0');
    assert.equal(await sent, true);
    assert.ok(body.equals(content.subarray(4321, 4321 + 2 * MiB)), 'the raw bytes, exact');
  });

  it('holds no descriptor until its first copy, then one for all its copies', async () => {
    const counted = duplicatesCounted();
    const answered = Promise.withResolvers<void>();
    handler = async (_req, res) => {
      const sender = FileSender.for(res, counted.addon);
      assert.ok(sender, 'a plain TCP response gets a sender');
      // A read that sends nothing from files (a running job's, through memory).
      res.end('from memory');
      sender.close();
      answered.resolve();
    };
    assert.equal((await get()).body.toString(), 'from memory');
    await answered.promise;
    assert.equal(counted.duplicates(), 0, 'no duplicate for a response that copied nothing');
    // Two copies of at most 16 MiB each, on one duplicate.
    const sent = serveSpan(counted.addon, 0, 20 * MiB);
    const { body } = await get();
    assert.equal(await sent, true);
    const expected = Buffer.concat([
      Buffer.from(`${(20 * MiB).toString(16)}\r\n`),
      content.subarray(0, 20 * MiB),
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    assert.ok(body.equals(expected), 'the span, exact');
    assert.ok(counted.copies() >= 2, `${counted.copies()} copies`);
    assert.equal(counted.duplicates(), 1);
  });

  it('without a descriptor to spare for its duplicate, sends the bytes through Node, exact', async () => {
    const counted = duplicatesCounted(-24 /* EMFILE */);
    const sent = serveSpan(counted.addon, 100, 3 * MiB);
    const { body } = await get();
    assert.equal(await sent, true);
    const head = `${(3 * MiB).toString(16)}\r\n`;
    assert.equal(body.subarray(0, head.length).toString(), head);
    assert.ok(body.subarray(head.length, head.length + 3 * MiB).equals(content.subarray(100, 100 + 3 * MiB)));
    assert.equal(body.subarray(head.length + 3 * MiB).toString(), '\r\n0\r\n\r\n');
    assert.equal(counted.copies(), 0, 'nothing copied by the kernel');
  });

  it('leaves a kept-alive connection ready for the next response, which is exact too', async () => {
    const first = serveSpan(realAddon(), 0, 2 * MiB);
    const firstHandler = handler;
    const second = serveSpan(realAddon(), 2 * MiB, MiB + 3);
    const secondHandler = handler;
    const handlers = [firstHandler, secondHandler];
    handler = async (req, res) => handlers.shift()!(req, res);
    const socket = connect(port, '127.0.0.1');
    const parser = { buffer: Buffer.alloc(0) };
    socket.on('data', (chunk: Buffer) => {
      parser.buffer = Buffer.concat([parser.buffer, chunk]);
    });
    const request = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    /** The body of the next whole chunked answer in what came, once it is all there. */
    const nextAnswer = async (): Promise<Buffer> => {
      for (;;) {
        const end = parser.buffer.indexOf('\r\n0\r\n\r\n');
        if (end >= 0) {
          // Head, one chunk's size line, its data up to `end`, then the last chunk.
          const bodyStart = parser.buffer.indexOf('\r\n\r\n') + 4;
          const dataStart = parser.buffer.indexOf('\r\n', bodyStart) + 2;
          const data = Buffer.from(parser.buffer.subarray(dataStart, end));
          parser.buffer = parser.buffer.subarray(end + 7);
          return data;
        }
        await once(socket, 'data');
      }
    };
    socket.write(request);
    assert.ok((await nextAnswer()).equals(content.subarray(0, 2 * MiB)), 'the first answer, exact');
    assert.equal(await first, true);
    socket.write(request);
    assert.ok((await nextAnswer()).equals(content.subarray(2 * MiB, 3 * MiB + 3)), 'the second, exact');
    assert.equal(await second, true);
    socket.destroy();
  });

  it('runs at most two copies at once, however many responses are sent', async () => {
    const counting = countingAddon(realAddon());
    const senders: Promise<boolean>[] = [];
    const clients: Promise<{ body: Buffer }>[] = [];
    // Six responses at once, each its own handler call.
    const pending: Array<(req: IncomingMessage, res: ServerResponse) => Promise<void>> = [];
    for (let i = 0; i < 6; i++) {
      senders.push(serveSpan(counting.addon, i * MiB, 4 * MiB));
      pending.push(handler);
    }
    handler = async (req, res) => pending.shift()!(req, res);
    for (let i = 0; i < 6; i++) clients.push(get());
    const bodies = await Promise.all(clients);
    assert.deepEqual(await Promise.all(senders), [true, true, true, true, true, true]);
    for (const { body } of bodies) assert.ok(body.length > 4 * MiB, 'a whole body');
    assert.ok(
      counting.mostInFlight() >= 1 && counting.mostInFlight() <= 2,
      `at most 2 (${counting.mostInFlight()})`,
    );
  });

  it('rejects a stretch past the end of the file, naming where the file ended', async () => {
    const sent = serveSpan(realAddon(), content.length - 100, 200);
    const rejected = assert.rejects(
      sent,
      new RegExp(`Output file ended at ${content.length}, before ${content.length + 100}`),
    );
    await get().catch(() => undefined);
    await rejected;
  });

  it('gives no sender for a response without a socket of its own (an injected request)', async () => {
    let sender: FileSender | undefined | null = null;
    const app = Fastify();
    app.get('/', async (_request, reply) => {
      sender = FileSender.for(reply.raw, realAddon());
      return 'ok';
    });
    const res = await app.inject({ method: 'GET', url: '/' });
    assert.equal(res.body, 'ok');
    assert.equal(sender, undefined);
    await app.close();
  });

  it('gives no sender without the addon', async () => {
    handler = async (_req, res) => {
      assert.equal(FileSender.for(res, undefined), undefined);
      res.end('ok');
    };
    const { body } = await get();
    assert.match(body.toString(), /ok/);
  });
});

describe('loadSendFile', () => {
  it('is built by setup and loads', () => {
    assert.equal(typeof realAddon().sendFile, 'function');
  });

  it('without the addon, says it is not built and how to build it', () => {
    assert.deepEqual(loadSendFile(['./no-such-dir/send-file.node']), {
      reason: 'send-file.node: not built (scripts/build-native.sh)',
    });
  });

  it('refuses bad arguments with a TypeError instead of copying anything', () => {
    const addon = realAddon();
    // Descriptors that are not open: were a bad argument let through, the copy would fail, not
    // copy this process's stdin to its stdout.
    const none = 1_000_000;
    for (const bad of [-1, Number.NaN, 2 ** 32 + 1, 1.5, Number.POSITIVE_INFINITY]) {
      assert.throws(() => addon.sendFile(bad, none, 0, 1), TypeError, `socket ${bad}`);
      assert.throws(() => addon.duplicate(bad), TypeError, `duplicate ${bad}`);
    }
    for (const bad of [-1, Number.NaN, 2 ** 53, 1.5, Number.POSITIVE_INFINITY]) {
      assert.throws(() => addon.sendFile(none, none, bad, 1), TypeError, `position ${bad}`);
      assert.throws(() => addon.sendFile(none, none, 0, bad), TypeError, `length ${bad}`);
    }
    assert.ok(addon.duplicate(1_000_000) < 0, 'a descriptor not open answers -errno');
    const widen = addon.widenSendBuffer!;
    for (const bad of [-1, Number.NaN, 2 ** 32 + 1, 1.5]) {
      assert.throws(() => widen(bad, MiB), TypeError, `widen descriptor ${bad}`);
      assert.throws(() => widen(none, bad), TypeError, `widen bytes ${bad}`);
    }
    assert.ok(widen(none, MiB) < 0, 'a descriptor not open answers -errno');
  });

  it("widens a Unix socket's send buffer, never shrinks it, and leaves TCP and other files alone", async () => {
    const addon = realAddon();
    const widen = addon.widenSendBuffer!;
    const dir = await mkdtemp(join(tmpdir(), 'jw-widen-'));
    const accepted: Socket[] = [];
    const server = createNetServer((socket) => accepted.push(socket));
    const tcp = createNetServer((socket) => accepted.push(socket));
    const clients: Socket[] = [];
    try {
      server.listen(join(dir, 'sock'));
      tcp.listen(0, '127.0.0.1');
      await Promise.all([once(server, 'listening'), once(tcp, 'listening')]);
      const local = connect(join(dir, 'sock'));
      const remote = connect((tcp.address() as AddressInfo).port, '127.0.0.1');
      clients.push(local, remote);
      await Promise.all([once(local, 'connect'), once(remote, 'connect')]);
      const fd = (socket: Socket) => (socket as unknown as { _handle: { fd: number } })._handle.fd;
      // 0 bytes asks for nothing: what the socket has (net.core.wmem_default).
      const initial = widen(fd(local), 0);
      assert.ok(initial > 0, `a Unix socket's buffer, ${initial} bytes`);
      const widened = widen(fd(local), 2 * MiB);
      assert.equal(widened, Math.max(initial, expectedSendBuffer(2 * MiB)));
      assert.equal(widen(fd(local), 64 * 1024), widened, 'asking for less changes nothing');
      assert.equal(widen(fd(local), 0), widened);
      assert.equal(widen(fd(remote), 2 * MiB), 0, 'TCP left alone');
      assert.throws(() => widen(fd(local), 2 ** 30 + 1), TypeError, 'more than 1 GiB');
      const file = await open(join(dir, 'file'), 'w');
      try {
        assert.ok(widen(file.fd, MiB) < 0, 'a file that is not a socket answers -errno');
      } finally {
        await file.close();
      }
    } finally {
      for (const socket of [...clients, ...accepted]) socket.destroy();
      await Promise.all([
        new Promise((resolve) => server.close(resolve)),
        new Promise((resolve) => tcp.close(resolve)),
      ]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The send buffer a Unix socket gets when `bytes` is asked for: the kernel keeps at most
 * net.core.wmem_max of it, and doubles what it keeps. Where that limit cannot be read the addon
 * asks for nothing, and the socket keeps what it has (at least 1 byte).
 */
function expectedSendBuffer(bytes: number): number {
  let max: number;
  try {
    max = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
  } catch {
    return 1;
  }
  return 2 * Math.min(bytes, max);
}

describe('writeFrames with file spans', () => {
  it('splits a span longer than a frame may be into frames a reader accepts, each with its cursor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-frames-'));
    const path = join(dir, 'stdout');
    // Sparse: 64 MiB + 5 bytes that cost no disk, the last 5 written.
    const total = MAX_FRAME_PAYLOAD + 5;
    const file = await open(path, 'w+');
    await file.truncate(total);
    await file.write(Buffer.from('tail!'), 0, 5, MAX_FRAME_PAYLOAD);
    const server = createServer((_req, res) => {
      const sender = FileSender.for(res, realAddon());
      async function* events(): AsyncGenerator<SpansEvent> {
        yield {
          type: 'spans',
          spans: [
            { type: 'data', stream: 'stdout', fd: file.fd, position: 0, length: total, cursor: 100 + total },
          ],
        };
      }
      void writeFrames(res, events(), {
        jobId: 'j',
        cursor: 100,
        signal: new AbortController().signal,
        ...(sender ? { sender } : {}),
      }).finally(() => sender?.close());
    });
    try {
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      // Whole frames: the decoder refuses one that announces more than MAX_FRAME_PAYLOAD.
      const decoder = new FrameDecoder();
      const frames: { kind: number; cursor: number; length: number; last: string }[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = request({ port, host: '127.0.0.1', agent: false }, (res) => {
          res.on('data', (chunk: Buffer) => {
            for (const frame of decoder.push(chunk)) {
              const { kind, cursor, payload } = frame;
              frames.push({
                kind,
                cursor,
                length: payload.length,
                last: payload.subarray(-5).toString('latin1'),
              });
            }
          });
          res.on('end', () => resolve());
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(decoder.pendingBytes, 0);
      assert.equal(frames.length, 2, 'two frames: the reader refuses one larger than MAX_FRAME_PAYLOAD');
      assert.deepEqual(
        frames.map(({ kind, cursor }) => [kind, cursor]),
        [
          [FRAME_KIND.stdout, 100 + MAX_FRAME_PAYLOAD],
          [FRAME_KIND.stdout, 100 + total],
        ],
      );
      assert.deepEqual(
        frames.map((f) => f.length),
        [MAX_FRAME_PAYLOAD, 5],
      );
      assert.equal(frames[1]!.last, 'tail!', 'the last bytes, from where they lie');
    } finally {
      server.close();
      await file.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
