import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseParser } from './sse-parser.ts';

// The parser the event-stream tests read `/v1/events` with: checked on its own first.
describe('SSE parser', () => {
  it('parses events split anywhere, with LF, CRLF or CR line ends, keeping the last id', () => {
    const text =
      ': hello\r\nid: 5\r\nevent: output\r\ndata: {"a":1}\r\n\r\nevent: end\rdata: x\rdata: y\r\rdata: plain\n\n';
    const parser = new SseParser();
    const events = [...text].flatMap((c) => parser.push(c));
    assert.deepEqual(events, [
      { event: 'output', data: '{"a":1}', id: '5' },
      { event: 'end', data: 'x\ny', id: '5' },
      { event: 'message', data: 'plain', id: '5' },
    ]);
  });

  it('parses the same events whatever the chunk sizes, an event of megabytes included', () => {
    const big = 'A'.repeat(1024 * 1024);
    const text = `id: 1\r\nevent: output\r\ndata: ${big}\r\n\r\nid: 2\rdata: small\r\rdata: ${big}\n\n`;
    const expected = [
      { event: 'output', data: big, id: '1' },
      { event: 'message', data: 'small', id: '2' },
      { event: 'message', data: big, id: '2' },
    ];
    for (const size of [3, 1000, 65536, 1_000_003, text.length]) {
      const parser = new SseParser();
      const events = [];
      for (let at = 0; at < text.length; at += size) events.push(...parser.push(text.slice(at, at + size)));
      assert.deepEqual(events, expected, `chunks of ${size}`);
    }
  });
});
