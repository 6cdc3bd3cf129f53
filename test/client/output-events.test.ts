import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NO_TLS } from '../../src/cli/connection.ts';
import { ApiClient } from '../../src/client/api-client.ts';
import { type OutputEvent, readOutputEvents } from '../../src/client/output-events.ts';
import {
  FRAME_KIND,
  frameHeader,
  HEARTBEAT_HEADER,
  jsonFrame,
  OUTPUT_FRAMES_TYPE,
} from '../../src/core/output-frames.ts';
import { type ApiHarness, openApi } from '../api/api-harness.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

/**
 * A TCP proxy in front of the real server that cuts its first connection once `cutAfter` bytes
 * of the server's answer went through (TLS included: it only forwards bytes), and forwards the
 * later ones whole.
 */
class CuttingProxy {
  readonly server: Server;
  connections = 0;
  readonly #sockets = new Set<Socket>();
  readonly #target: URL;

  constructor(target: URL, cutAfter: number) {
    this.#target = target;
    this.server = createServer((client) => {
      const first = this.connections++ === 0;
      const upstream = netConnect({ host: target.hostname, port: Number(target.port) });
      this.#sockets.add(client).add(upstream);
      let sent = 0;
      client.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk: Buffer) => {
        if (!first) return void client.write(chunk);
        const room = cutAfter - sent;
        sent += chunk.length;
        if (room > 0) client.write(chunk.subarray(0, room));
        if (sent >= cutAfter) close();
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
  }

  /** Listens on loopback; resolves with the target's URL on the proxy's port. */
  async listen(): Promise<URL> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const url = new URL(this.#target.href);
    url.port = String((this.server.address() as { port: number }).port);
    return url;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A follow of job `j1` retrying at once, on `clock`, with the reasons of its retries. */
function followJ1(client: Parameters<typeof readOutputEvents>[0], clock: ManualClock) {
  const retries: string[] = [];
  const events = readOutputEvents(client, 'j1', {
    view: 'all',
    follow: true,
    backoffMs: 0,
    clock,
    onRetry: (_attempt, error) => retries.push(error.message),
  });
  return { events, retries };
}

describe('readOutputEvents', () => {
  let h: ApiHarness;
  let ca: string;
  before(async () => {
    h = await openApi();
    ca = await readFile(h.server.caFile!, 'utf8');
  });
  after(async () => {
    await h.destroy();
  });

  it('resumes a read cut in the middle of a frame where it was cut: every byte once, in order', async () => {
    // 3 MiB of random bytes: the server sends it in frames of up to 1 MiB.
    const submitted = await h.json<{ id: string }>('/v1/jobs', {
      method: 'POST',
      body: { command: 'head', args: ['-c', String(3 * 1024 * 1024), '/dev/urandom'] },
    });
    assert.equal(submitted.status, 201);
    const { id } = submitted.body;
    // A follow answers once the job ended.
    await h.api(`/v1/jobs/${id}/output?follow=true`).then((r) => r.arrayBuffer());
    assert.equal((await h.json<{ status: string }>(`/v1/jobs/${id}`)).body.status, 'succeeded');
    const expected = await readFile(join(h.dataDir, 'jobs', id, 'stdout'));
    assert.equal(expected.length, 3 * 1024 * 1024);

    const proxy = new CuttingProxy(new URL(h.server.url), 1_500_000);
    const proxyUrl = await proxy.listen();
    try {
      const client = new ApiClient({
        baseUrl: proxyUrl,
        socketPath: null,
        local: true,
        token: h.token,
        tokenSource: 'env',
        tokenFile: join(h.dataDir, 'admin.token'),
        tls: {
          ca: [ca],
          caFiles: [],
          caExplicit: true,
          cert: undefined,
          key: undefined,
          certFile: undefined,
        },
      });
      const events: OutputEvent[] = [];
      const retries: string[] = [];
      for await (const event of readOutputEvents(client, id, {
        view: 'all',
        follow: false,
        backoffMs: 1,
        onRetry: (_attempt, error) => retries.push(error.message),
      })) {
        events.push(event);
      }
      assert.equal(proxy.connections, 2, `one cut, one resumed read (retries: ${retries.join('; ')})`);
      const data = events.flatMap((e) => (e.type === 'output' ? [e] : []));
      assert.ok(data.every((e) => e.stream === 'stdout'));
      assert.ok(Buffer.concat(data.map((e) => e.data)).equals(expected), 'every byte once, in order');
      // Each event's cursor is the position after its bytes; the cut fell inside the second frame,
      // and the read resumed from the last byte received, not from a frame's start.
      let position = 0;
      for (const event of data) {
        position += event.data.length;
        assert.equal(event.cursor, String(position));
      }
      assert.ok(
        data.some((e) => Number(e.cursor) % (1024 * 1024) !== 0 && Number(e.cursor) < 2 * 1024 * 1024),
        'some data arrived in pieces smaller than a frame',
      );
    } finally {
      await proxy.close();
    }
  });
});

/** A one-shot client (as the CLI's) of a plain-HTTP test server on loopback. */
function plainClient(server: HttpServer | Server): ApiClient {
  const { port } = server.address() as { port: number };
  return new ApiClient(
    {
      baseUrl: new URL(`http://127.0.0.1:${port}/`),
      socketPath: null,
      local: true,
      token: 't',
      tokenSource: 'env',
      tokenFile: '/nonexistent',
      tls: NO_TLS,
    },
    { oneShot: true },
  );
}

describe('readOutputEvents: a follow whose connection goes silent', () => {
  it('takes the connection for lost after three heartbeat periods without a byte, and resumes from its cursor', async () => {
    const clock = new ManualClock();
    const requests: string[] = [];
    const requested = new EventEmitter();
    // A server that announces heartbeats every 1000 ms, sends one output frame, then nothing (a
    // link that a NAT dropped without a reset); the second request gets the rest and the end.
    const server = createHttpServer((req, res) => {
      requests.push(req.url ?? '');
      res.writeHead(200, { 'content-type': OUTPUT_FRAMES_TYPE, [HEARTBEAT_HEADER]: '1000' });
      if (requests.length === 1) {
        res.write(Buffer.concat([frameHeader(FRAME_KIND.stdout, 3, 3), Buffer.from('one')]));
        requested.emit('silent', res);
      } else {
        res.write(Buffer.concat([frameHeader(FRAME_KIND.stdout, 6, 3), Buffer.from('two')]));
        const job = { id: 'j1', status: 'succeeded' };
        res.end(
          Buffer.concat([
            frameHeader(FRAME_KIND.end, 6, JSON.stringify({ job }).length),
            Buffer.from(JSON.stringify({ job })),
          ]),
        );
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const silent = once(requested, 'silent');
    try {
      const client = plainClient(server);
      const { events, retries } = followJ1(client, clock);
      const first = await events.next();
      assert.deepEqual(first.value, {
        type: 'output',
        stream: 'stdout',
        data: Buffer.from('one'),
        cursor: '3',
      });
      await silent;
      const rest = (async () => {
        const got: OutputEvent[] = [];
        for await (const event of events) got.push(event);
        return got;
      })();
      // The first period heard the frame; two silent ones after it are not yet a lost
      // connection, the third is.
      for (let period = 1; period <= 3; period++) clock.advance(1000);
      assert.equal(requests.length, 1);
      clock.advance(1000);
      const got = await rest;
      assert.deepEqual(
        got.map((e) => e.type),
        ['output', 'end'],
      );
      assert.equal(requests.length, 2);
      assert.match(requests[1]!, /cursor=3/);
      assert.equal(retries.length, 1);
      assert.match(retries[0]!, /Nothing came from the server for 3s or more, not even a heartbeat/);
      assert.equal(clock.pending, 0, 'no watchdog left armed');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
  it("does not count the time its consumer holds an event as the server's silence", async () => {
    const clock = new ManualClock();
    let requests = 0;
    const requested = new EventEmitter();
    // A server that announces heartbeats every 1000 ms and sends one frame; the test sends the
    // rest on the same response later.
    const server = createHttpServer((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': OUTPUT_FRAMES_TYPE, [HEARTBEAT_HEADER]: '1000' });
      res.write(Buffer.concat([frameHeader(FRAME_KIND.stdout, 3, 3), Buffer.from('one')]));
      requested.emit('answered', res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const answered = once(requested, 'answered');
    try {
      const client = plainClient(server);
      const { events, retries } = followJ1(client, clock);
      assert.equal((await events.next()).value?.type, 'output');
      const [res] = (await answered) as [ServerResponse];
      // The consumer holds the first event for five periods (a slow pipe, a paused pager).
      for (let period = 1; period <= 5; period++) clock.advance(1000);
      // Then the rest comes on the same connection, which the watchdog must have left open.
      const job = JSON.stringify({ job: { id: 'j1', status: 'succeeded' } });
      res.write(Buffer.concat([frameHeader(FRAME_KIND.stdout, 6, 3), Buffer.from('two')]));
      res.end(Buffer.concat([frameHeader(FRAME_KIND.end, 6, job.length), Buffer.from(job)]));
      const got: OutputEvent[] = [];
      for await (const event of events) got.push(event);
      assert.deepEqual(
        got.map((e) => e.type),
        ['output', 'end'],
      );
      assert.equal(requests, 1, 'no reconnection');
      assert.deepEqual(retries, []);
      assert.equal(clock.pending, 0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** A server that answers every request 503 (a server that is there but cannot serve yet), counting them. */
async function unavailableServer(): Promise<{ server: HttpServer; requests: () => number }> {
  let requests = 0;
  const server = createHttpServer((_req, res) => {
    requests++;
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'starting' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, requests: () => requests };
}

/**
 * A follow of job `j1` from `server` on `clock`: a first pause of 100 ms, reconnecting for a second
 * at most; `retried` emits `retry` with each attempt's number.
 */
function followRetrying(server: HttpServer, clock: ManualClock, retried: EventEmitter, signal?: AbortSignal) {
  return readOutputEvents(plainClient(server), 'j1', {
    view: 'all',
    follow: true,
    backoffMs: 100,
    reconnectForMs: 1000,
    clock,
    ...(signal ? { signal } : {}),
    onRetry: (attempt) => retried.emit('retry', attempt),
  });
}

describe('readOutputEvents: reconnections', () => {
  it('pauses between reconnections on its clock, and gives up once reconnectForMs has passed there', async () => {
    const clock = new ManualClock();
    const { server, requests } = await unavailableServer();
    const retried = new EventEmitter();
    try {
      const events = followRetrying(server, clock, retried);
      const outcome = events.next().then(
        () => assert.fail('a server that never serves gives no event'),
        (error: Error) => error,
      );
      assert.deepEqual(await once(retried, 'retry'), [1]);
      assert.equal(requests(), 1);
      // The first pause is 100 ms with up to a fifth of jitter either way: 80 ms on is too early.
      clock.advance(79);
      assert.equal(clock.pending, 1, 'still pausing: time has not moved far enough on its clock');
      const second = once(retried, 'retry');
      clock.advance(41);
      assert.deepEqual(await second, [2]);
      assert.equal(requests(), 2);
      // The next pause, however long, ends at reconnectForMs at the latest: the attempt after it
      // is the last.
      clock.advance(1000);
      const error = await outcome;
      // 1,120 ms on its clock: the first attempt, 120 ms of pause, the second, the rest of the second.
      assert.equal(
        error.message,
        'starting (gave up after reconnecting for 1.1s, 3 attempts; --reconnect-for sets how long)',
      );
      assert.equal(requests(), 3);
      assert.equal(clock.pending, 0, 'no pause left armed');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('counts how long it has reconnected on a time that steps of the wall clock do not move', async () => {
    // The wall clock jumps an hour ahead during the outage (an NTP step, a VM resumed): the
    // follower has still been reconnecting for 120 ms, not an hour, and keeps trying.
    class SteppedClock extends ManualClock {
      stepMs = 0;
      override now(): Date {
        return new Date(super.now().getTime() + this.stepMs);
      }
    }
    const clock = new SteppedClock();
    const { server, requests } = await unavailableServer();
    const retried = new EventEmitter();
    const stop = new AbortController();
    try {
      const events = followRetrying(server, clock, retried, stop.signal);
      const outcome = events.next().catch((error: Error) => error);
      await once(retried, 'retry');
      clock.stepMs = 3_600_000;
      const second = once(retried, 'retry');
      clock.advance(120);
      const next = await Promise.race([second.then(() => 'tried again'), outcome.then(() => 'gave up')]);
      assert.equal(next, 'tried again', 'not given up after "an hour"');
      assert.equal(requests(), 2);
      stop.abort(new Error('the reader left'));
      assert.match(((await outcome) as Error).message, /the reader left/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('keeps its process alive while it pauses, where nothing else would (a CLI follower between two attempts)', async () => {
    const { server } = await unavailableServer();
    const { port } = server.address() as { port: number };
    // A program whose only work is the follow: between two attempts nothing but the pause holds
    // it. Were the pause's timer not to hold the process, it would end at the first pause with
    // its top-level await unsettled (exit code 13), and never report.
    const program = `
      import { ApiClient } from ${JSON.stringify(new URL('../../src/client/api-client.ts', import.meta.url).href)};
      import { NO_TLS } from ${JSON.stringify(new URL('../../src/cli/connection.ts', import.meta.url).href)};
      import { readOutputEvents } from ${JSON.stringify(new URL('../../src/client/output-events.ts', import.meta.url).href)};
      const client = new ApiClient({ baseUrl: new URL('http://127.0.0.1:${port}/'), socketPath: null, local: true,
        token: 't', tokenSource: 'env', tokenFile: '/nonexistent', tls: NO_TLS }, { oneShot: true });
      let attempts = 0;
      try {
        for await (const _ of readOutputEvents(client, 'j1', { view: 'all', follow: true, backoffMs: 50,
          reconnectForMs: 300, onRetry: (n) => { attempts = n; } })) {}
      } catch (error) {
        console.log(attempts > 1 ? 'gave up' : 'only ' + attempts, error.message);
      }`;
    try {
      const child = spawn(process.execPath, ['--input-type=module', '-e', program], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk));
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, out);
      assert.match(out, /^gave up .*gave up after reconnecting for/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('readOutputEvents: a read without follow that ends without its end frame', () => {
  /**
   * A server whose answers end cleanly (a close-delimited body, as a proxy that drops the
   * connection leaves it) after the bytes from the request's cursor up to `cutAt`; the `end` frame
   * only from an answer that starts at `cutAt` (none when `cutAt` is past the output's end).
   */
  async function cuttingServer(output: Buffer, cutAt: number) {
    const cursors: (string | null)[] = [];
    // A raw server: Node's would end a body without a length with its last chunk.
    const server = createServer((socket) => {
      socket.once('data', (request: Buffer) => {
        const path = request.toString('latin1').split(' ')[1]!;
        const cursor = new URL(path, 'http://x').searchParams.get('cursor');
        cursors.push(cursor);
        const from = Number(cursor ?? 0);
        const to = from < cutAt ? Math.min(cutAt, output.length) : output.length;
        const piece = output.subarray(from, to);
        const frames = [
          ...(piece.length > 0 ? [frameHeader(FRAME_KIND.stdout, to, piece.length), piece] : []),
          ...(from >= cutAt
            ? [jsonFrame(FRAME_KIND.end, to, { job: { id: 'j1', status: 'succeeded' } })]
            : []),
        ];
        const head = `HTTP/1.1 200 OK\r\nContent-Type: ${OUTPUT_FRAMES_TYPE}\r\nConnection: close\r\n\r\n`;
        // Ended by closing the connection: no Content-Length, no chunked encoding.
        socket.end(Buffer.concat([Buffer.from(head, 'latin1'), ...frames]));
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, cursors };
  }

  function readJ1(server: Server, reconnectForMs: number) {
    return readOutputEvents(plainClient(server), 'j1', {
      view: 'all',
      follow: false,
      backoffMs: 0,
      reconnectForMs,
      clock: new ManualClock(),
    });
  }

  it('resumes it from its cursor, as a follow is, and ends at the end frame: every byte once', async () => {
    const output = Buffer.from('first part|second part\n');
    const { server, cursors } = await cuttingServer(output, 11);
    try {
      const events: OutputEvent[] = [];
      for await (const event of readJ1(server, 60_000)) events.push(event);
      assert.deepEqual(cursors, [null, '11']);
      const data = events.flatMap((e) => (e.type === 'output' ? [e.data] : []));
      assert.equal(Buffer.concat(data).toString(), 'first part|second part\n');
      assert.equal(events.at(-1)?.type, 'end');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails, saying so, when no answer brings the end frame', async () => {
    const { server } = await cuttingServer(Buffer.from('all there is\n'), 1000);
    try {
      // No reconnecting (0): the first answer without its end frame is the last.
      const events = readJ1(server, 0);
      const first = await events.next();
      assert.equal(first.value?.type, 'output');
      await assert.rejects(events.next(), {
        message: /^The server closed the output stream before sending all of it \(gave up after/,
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
