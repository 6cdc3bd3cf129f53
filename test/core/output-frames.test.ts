import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FRAME_HEADER_BYTES,
  FRAME_KIND,
  FrameDecoder,
  FrameFormatError,
  frameHeader,
  jsonFrame,
  type OutputFrame,
} from '../../src/core/output-frames.ts';

function dataFrame(kind: 1 | 2, cursor: number, payload: Buffer): Buffer {
  return Buffer.concat([frameHeader(kind, cursor, payload.length), payload]);
}

function plain(frames: readonly OutputFrame[]) {
  return frames.map((f) => ({ kind: f.kind, cursor: f.cursor, payload: f.payload.toString('latin1') }));
}

describe('output frames', () => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0x41);
  const stream = Buffer.concat([
    dataFrame(FRAME_KIND.stdout, 5, Buffer.from('hello')),
    dataFrame(FRAME_KIND.stderr, 8, Buffer.from('err')),
    dataFrame(FRAME_KIND.stdout, 8, Buffer.alloc(0)),
    jsonFrame(FRAME_KIND.truncated, 100, { stream: 'stdout', skippedBytes: 92 }),
    Buffer.concat([frameHeader(9 as 1, 100, 2), Buffer.from('??')]),
    dataFrame(FRAME_KIND.stdout, 100 + big.length, big),
    jsonFrame(FRAME_KIND.end, 100 + big.length, { job: { id: 'x' } }),
  ]);
  const expected = plain(new FrameDecoder().push(stream));

  it('decodes every kind, unknown ones included, with its cursor', () => {
    assert.deepEqual(
      expected.map(({ kind, cursor }) => [kind, cursor]),
      [
        [1, 5],
        [2, 8],
        [1, 8],
        [3, 100],
        [9, 100],
        [1, 100 + big.length],
        [4, 100 + big.length],
      ],
    );
    assert.equal(expected[0]!.payload, 'hello');
    assert.deepEqual(JSON.parse(expected[3]!.payload), { stream: 'stdout', skippedBytes: 92 });
    assert.equal(expected[5]!.payload.length, big.length);
  });

  it('decodes the same frames whatever the chunking, a split header included', () => {
    for (const size of [1, 2, 12, 13, 14, 1000, 65536, 1_000_003]) {
      // Single bytes through a 3 MiB frame would be slow: cover the small frames bytewise only.
      const input = size < 1000 ? stream.subarray(0, 60) : stream;
      const decoder = new FrameDecoder();
      const frames: OutputFrame[] = [];
      for (let at = 0; at < input.length; at += size)
        frames.push(...decoder.push(input.subarray(at, at + size)));
      const want = size < 1000 ? plain(new FrameDecoder().push(input)) : expected;
      assert.deepEqual(plain(frames), want, `chunks of ${size}`);
      assert.equal(decoder.pendingBytes, size < 1000 ? input.length - sum(frames) : 0);
    }
  });

  it('decodes chunks read into one reused buffer when what it holds back is detached after each', () => {
    for (const splitData of [false, true]) {
      for (const size of [7, 13, 20, 4096]) {
        const input = stream.subarray(0, 200);
        const reused = Buffer.alloc(size);
        const decoder = new FrameDecoder({ splitData });
        const frames: ReturnType<typeof plain> = [];
        for (let at = 0; at < input.length; at += size) {
          const length = input.copy(reused, 0, at, at + size);
          // Used before the next read, as a borrowing reader does; then the buffer is overwritten.
          frames.push(...plain(decoder.push(reused.subarray(0, length))));
          decoder.detachPending();
          reused.fill(0xee);
        }
        const whole = plain(new FrameDecoder({ splitData }).push(input));
        if (splitData) {
          // Data comes in pieces: compare what each stream's runs add up to, and the other frames.
          const joined = (list: typeof frames, kind: number) =>
            list
              .filter((f) => f.kind === kind)
              .map((f) => f.payload)
              .join('');
          for (const kind of [FRAME_KIND.stdout, FRAME_KIND.stderr, FRAME_KIND.truncated, 9])
            assert.equal(joined(frames, kind), joined(whole, kind), `kind ${kind}, reads of ${size}`);
        } else assert.deepEqual(frames, whole, `reads of ${size}`);
      }
    }
  });

  it('returns a payload that came in one chunk without copying it', () => {
    const chunk = dataFrame(FRAME_KIND.stdout, 3, Buffer.from('abc'));
    const [frame] = new FrameDecoder().push(chunk);
    assert.equal(frame!.payload.buffer, chunk.buffer);
  });

  it('with splitData, returns data as it arrives, each piece with the position after it', () => {
    for (const size of [1, 7, 13, 14, 1000, 65536, 1_000_003]) {
      const input = size < 1000 ? stream.subarray(0, 60) : stream;
      const decoder = new FrameDecoder({ splitData: true });
      const pieces: OutputFrame[] = [];
      for (let at = 0; at < input.length; at += size) {
        const chunk = input.subarray(at, at + size);
        for (const piece of decoder.push(chunk)) {
          pieces.push(piece);
          // Data comes as views of the chunk it arrived in, never copied.
          if (piece.kind <= FRAME_KIND.stderr && piece.payload.length > 0 && size >= 1000)
            assert.equal(piece.payload.buffer, chunk.buffer, `chunks of ${size}`);
        }
      }
      // Joined back by frame (a piece ends its frame when its cursor is the frame's), the pieces
      // are the frames; each piece's cursor is where its last byte ends in the view.
      const whole = size < 1000 ? plain(new FrameDecoder().push(input)) : expected;
      const joined: { kind: number; cursor: number; payload: string }[] = [];
      let open: { kind: number; cursor: number; payload: string } | undefined;
      for (const piece of plain(pieces)) {
        if (open && open.kind === piece.kind && piece.cursor - piece.payload.length === open.cursor) {
          open.payload += piece.payload;
          open.cursor = piece.cursor;
        } else {
          open = { ...piece };
          joined.push(open);
        }
        if (piece.kind > FRAME_KIND.stderr) open = undefined;
      }
      assert.deepEqual(joined, whole, `chunks of ${size}`);
      const frameBytes = size < 1000 ? sum(new FrameDecoder().push(input)) : input.length;
      const dataSplit = size < 1000 ? input.length - frameBytes : 0;
      assert.equal(decoder.pendingBytes > 0, dataSplit > 0, `chunks of ${size}`);
    }
  });

  it('with splitData, still holds a JSON frame back until it is whole', () => {
    const end = jsonFrame(FRAME_KIND.end, 9, { job: { id: 'x' } });
    const decoder = new FrameDecoder({ splitData: true });
    assert.deepEqual(decoder.push(end.subarray(0, 20)), []);
    assert.equal(decoder.pendingBytes, 20);
    const [frame] = decoder.push(end.subarray(20));
    assert.deepEqual(JSON.parse(frame!.payload.toString()), { job: { id: 'x' } });
    assert.equal(decoder.pendingBytes, 0);
  });

  it('refuses a frame that announces an absurd length, naming it', () => {
    const header = frameHeader(FRAME_KIND.stdout, 0, 0);
    header.writeUInt32BE(0xffffffff, 9);
    assert.throws(() => new FrameDecoder().push(header), FrameFormatError);
    assert.throws(() => new FrameDecoder().push(header), /4294967295 bytes/);
  });
});

function sum(frames: readonly OutputFrame[]): number {
  return frames.reduce((n, f) => n + FRAME_HEADER_BYTES + f.payload.length, 0);
}
