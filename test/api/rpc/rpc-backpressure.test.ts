import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { type ClientHttp2Stream, connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  OutputView,
  StreamOutputRequestSchema,
} from '../../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { type ApiHarness, openApi } from '../api-harness.ts';

/**
 * A gRPC client made of node:http2 alone, so that "not reading" means exactly that: a paused
 * HTTP/2 stream, whose flow-control window closes. (@grpc/grpc-js keeps reading into its own
 * buffers while its stream is paused, which would hide what the server does.)
 */
function streamOutput(h: ApiHarness, ca: string, id: string): { stream: ClientHttp2Stream; close(): void } {
  const session = connect(h.server.url, { ca });
  const message = toBinary(
    StreamOutputRequestSchema,
    create(StreamOutputRequestSchema, { id, view: OutputView.STDOUT, follow: true }),
  );
  const envelope = Buffer.alloc(5 + message.length);
  envelope.writeUInt32BE(message.length, 1);
  envelope.set(message, 5);
  const stream = session.request({
    ':method': 'POST',
    ':path': '/jobworker.v1.JobService/StreamOutput',
    'content-type': 'application/grpc+proto',
    te: 'trailers',
    authorization: `Bearer ${h.token}`,
  });
  stream.end(envelope);
  return { stream, close: () => session.close() };
}

describe('gRPC backpressure', () => {
  let h: ApiHarness;
  let ca: string;
  before(async () => {
    h = await openApi();
    ca = await readFile(h.server.caFile!, 'utf8');
  });
  after(() => h.destroy());

  it('a client that stops reading holds the server to the flow-control window (RSS stays flat), then gets every byte', async () => {
    const size = 256 * 1024 * 1024;
    const { body: job } = await h.json<{ id: string }>('/v1/jobs', {
      body: { command: 'head', args: ['-c', String(size), '/dev/zero'] },
    });
    const { stream, close } = streamOutput(h, ca, job.id);
    const frames: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      frames.push(chunk);
    };
    await new Promise<void>((resolve) =>
      stream.once('data', (chunk: Buffer) => {
        onData(chunk);
        stream.pause();
        resolve();
      }),
    );
    const before = process.memoryUsage().rss;
    // Meanwhile another client follows the same output to its end, discarding it: time enough for a
    // server that reads ahead for the paused client to have read all of it too.
    const other = streamOutput(h, ca, job.id);
    let otherBytes = 0;
    other.stream.on('data', (chunk: Buffer) => {
      otherBytes += chunk.length;
    });
    await new Promise((resolve) => other.stream.once('end', resolve));
    other.close();
    assert.ok(otherBytes > size);
    const grown = process.memoryUsage().rss - before;
    // The other reader's own churn shows in RSS too (about half the output here); a server that read
    // ahead would hold all of it on top (measured: 1.3x the output), so the bound sits between.
    assert.ok(grown < size * 0.75, `the process grew by ${grown} bytes for a paused client of ${size}`);
    assert.ok(received < 1024 * 1024, `the paused client already had ${received} bytes`);

    // Reading again, the client gets the whole output and the status in the trailers.
    let dataBytes = 0;
    let pending: Buffer = Buffer.concat(frames);
    const trailers = new Promise<Record<string, unknown>>((resolve) => stream.once('trailers', resolve));
    stream.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Envelopes: a flag byte, a 4-byte length, the message (the data with a few bytes of framing).
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        const length = pending.readUInt32BE(1);
        dataBytes += length;
        pending = pending.subarray(5 + length);
      }
    });
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    assert.equal((await trailers)['grpc-status'], '0');
    assert.ok(dataBytes > size, `${dataBytes} bytes of messages for ${size} bytes of output`);
    close();
  });
});
