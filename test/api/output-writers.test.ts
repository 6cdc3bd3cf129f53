import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  outputJson,
  type StreamSummary,
  writeFrames,
  writeRaw,
  writeSse,
} from '../../src/api/rest/output-writers.ts';
import type { FollowEvent } from '../../src/engine/job-engine.ts';
import type { OutputEvent } from '../../src/output/output-types.ts';
import { SharedReads } from '../../src/output/shared-reads.ts';

type Writer = (res: ServerResponse, signal: AbortSignal) => Promise<unknown>;

/** One output event whose bytes lie in a "page": `released` settles when the writer gives it back. */
function pooledEvent(bytes: number): {
  events: AsyncGenerator<FollowEvent>;
  released: Promise<number>;
  count: () => number;
} {
  let count = 0;
  const { promise, resolve } = Promise.withResolvers<number>();
  const data = Buffer.alloc(bytes, 7);
  const release = () => {
    count++;
    resolve(count);
  };
  async function* events(): AsyncGenerator<FollowEvent> {
    yield { type: 'output', events: [{ type: 'data', stream: 'stdout', data, cursor: bytes }], release };
  }
  return { events: events(), released: promise, count: () => count };
}

describe('output writers give pooled pages back', () => {
  let server: Server;
  let url: string;
  let writer: Writer = async () => {};
  let finished: Promise<unknown> = Promise.resolve();
  before(async () => {
    server = createServer((req, res) => {
      const controller = new AbortController();
      res.once('close', () => controller.abort());
      finished = writer(res, controller.signal);
      req.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const open = () =>
    new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).once('error', reject));

  for (const [name, write] of [
    [
      'raw',
      (res: ServerResponse, events: AsyncGenerator<FollowEvent>, signal: AbortSignal) =>
        writeRaw(res, events, {
          jobId: 'j',
          cursor: 0,
          contentType: 'application/octet-stream',
          trailers: true,
          signal,
        }),
    ],
    [
      'frames',
      (res: ServerResponse, events: AsyncGenerator<FollowEvent>, signal: AbortSignal) =>
        writeFrames(res, events, { jobId: 'j', cursor: 0, signal }),
    ],
  ] as const) {
    it(`${name}: once its bytes were written, whole`, async () => {
      const page = pooledEvent(3 * 1024 * 1024);
      writer = (res, signal) => write(res, page.events, signal);
      const res = await open();
      let received = 0;
      for await (const chunk of res) received += (chunk as Buffer).length;
      assert.ok(received >= 3 * 1024 * 1024);
      assert.equal(await page.released, 1);
      await finished;
      assert.equal(page.count(), 1, 'given back once');
    });

    it(`${name}: once, when the client left during the write (a failed write)`, async () => {
      // Far more than the socket buffers hold, so the write is still queued when the client goes.
      const page = pooledEvent(64 * 1024 * 1024);
      writer = (res, signal) => write(res, page.events, signal);
      const res = await open();
      await new Promise<void>((resolve) => res.once('data', () => resolve()));
      res.destroy();
      assert.equal(await page.released, 1);
      await finished.catch(() => undefined);
      assert.equal(page.count(), 1, 'given back once');
    });
  }
});

it('an SSE output event carries exactly what JSON.stringify would give', () => {
  for (const [stream, size, cursor] of [
    ['stdout', 0, 0],
    ['stderr', 1, 7],
    ['stdout', 65536, Number.MAX_SAFE_INTEGER],
  ] as const) {
    const data = randomBytes(size);
    const expected = JSON.stringify({ stream, data: data.toString('base64'), cursor: String(cursor) });
    assert.equal(outputJson(stream, data, cursor), expected);
  }
});

describe('event streams of one shared read', () => {
  it('encode its events once for every follower, and a pooled page for each, exact', async () => {
    // One read as its followers get it (`SharedReads`): the same array, no page to give back.
    const reads = new SharedReads();
    const { events: shared } = await reads.get('all 0 65536', async () => ({
      events: [
        { type: 'data', stream: 'stdout', data: Buffer.from('line one\n'), cursor: 9 },
        { type: 'data', stream: 'stdout', data: Buffer.from('two\n'), cursor: 13 },
        { type: 'truncated', stream: 'stderr', skippedBytes: 5, cursor: 18 },
      ],
      cursor: 18,
      end: 18,
    }));
    // Bytes in a pooled page, and a follower's own read (no page, but no shared read either),
    // each handed to both followers as one array: were either kept like a shared read's, the
    // second follower would get the first one's chunk.
    const page: OutputEvent[] = [{ type: 'data', stream: 'stdout', data: Buffer.from('tail\n'), cursor: 23 }];
    const own: OutputEvent[] = [{ type: 'data', stream: 'stdout', data: Buffer.from('end\n'), cursor: 27 }];
    let released = 0;
    /** What each response wrote to its socket, in order. */
    const writes: Buffer[][] = [];
    const written: Promise<StreamSummary>[] = [];
    const server = createServer((req, res) => {
      const socket = res.socket!;
      const mine: Buffer[] = [];
      writes.push(mine);
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((chunk: unknown, ...rest: unknown[]) => {
        if (Buffer.isBuffer(chunk)) mine.push(chunk);
        return write(chunk, ...rest);
      }) as typeof socket.write;
      async function* events(): AsyncGenerator<FollowEvent> {
        yield { type: 'output', events: shared };
        yield { type: 'output', events: page, release: () => released++ };
        yield { type: 'output', events: own };
      }
      const controller = new AbortController();
      res.once('close', () => controller.abort());
      req.resume();
      const summary = writeSse(res, events(), { jobId: 'j', cursor: 0, signal: controller.signal });
      // A writer that failed ends its response, so that the client's read ends too.
      summary.catch((err: unknown) => res.destroy(err as Error));
      written.push(summary);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const read = async () => {
        const res = await new Promise<IncomingMessage>((resolve, reject) =>
          get(url, { agent: false }, resolve).once('error', reject),
        );
        let body = '';
        res.setEncoding('utf8');
        for await (const text of res) body += text;
        return body;
      };
      const bodies = [await read(), await read()];
      const expected =
        `retry: 2000\n\n` +
        `event: output\nid: 13\ndata: ${outputJson('stdout', Buffer.from('line one\ntwo\n'), 13)}\n\n` +
        `event: truncated\nid: 18\ndata: ${JSON.stringify({ stream: 'stderr', skippedBytes: 5, cursor: '18' })}\n\n` +
        `event: output\nid: 23\ndata: ${outputJson('stdout', Buffer.from('tail\n'), 23)}\n\n` +
        `event: output\nid: 27\ndata: ${outputJson('stdout', Buffer.from('end\n'), 27)}\n\n`;
      assert.deepEqual(bodies, [expected, expected], 'both followers got every event, exact');
      // Each follower counts the bytes and the cursor itself: 9 + 4 + 5 + 4 bytes, the last cursor.
      for (const summary of await Promise.all(written)) {
        assert.equal(summary.bytes, 22);
        assert.equal(summary.cursor, 27);
      }
      assert.equal(released, 2, "each follower's page given back once");
      const sharedChunk = (mine: Buffer[]) => mine.find((chunk) => chunk.includes('id: 13\n'));
      const pageChunk = (mine: Buffer[]) => mine.find((chunk) => chunk.includes('id: 23\n'));
      assert.equal(writes.length, 2);
      const first = sharedChunk(writes[0]!);
      assert.ok(first?.includes('id: 18\n'), "the shared read's events went to the socket as one chunk");
      assert.equal(first, sharedChunk(writes[1]!), 'the shared read is encoded once, into one buffer');
      assert.ok(pageChunk(writes[0]!) && pageChunk(writes[1]!));
      assert.notEqual(
        pageChunk(writes[0]!),
        pageChunk(writes[1]!),
        "a pooled page's batch is encoded for its follower alone",
      );
      const ownChunk = (mine: Buffer[]) => mine.find((chunk) => chunk.includes('id: 27\n'));
      assert.ok(ownChunk(writes[0]!) && ownChunk(writes[1]!));
      assert.notEqual(
        ownChunk(writes[0]!),
        ownChunk(writes[1]!),
        "a follower's own read is encoded for it alone",
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
