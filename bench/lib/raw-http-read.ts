/**
 * The catch-up scenario's raw HTTP client, run in a process of its own (`runNodeScript`): one
 * GET over a plain `node:net` socket, its body counted and dropped like `cat > /dev/null`. It
 * reads into one reused buffer (`onread`), so it allocates nothing per read: a `node:http` client
 * allocates and parses a buffer per 64 KiB read and, in the bench's own process, was the bound of
 * this figure (~0.6 GB/s against the server's ~2.4 GB/s to curl on the same machine).
 *
 * Usage: node raw-http-read.ts <http://host:port/path> <token>. Prints one JSON document:
 * `{ status, bytes, seconds, trailers }`, where `bytes` counts the body (chunk framing excluded)
 * and `seconds` runs from the connection's start to the body's last byte.
 */
import { connect } from 'node:net';

const READ_BUFFER_BYTES = 1024 * 1024;

interface Result {
  status: number;
  bytes: number;
  seconds: number;
  trailers: Record<string, string>;
}

/** A response parser for what the server sends: a head, then a chunked or a sized body. */
class BodyCounter {
  status = 0;
  bytes = 0;
  readonly trailers: Record<string, string> = {};
  done = false;
  /** Neither a length nor chunks: the body is whatever comes before the connection ends. */
  untilClose = false;
  #head = Buffer.alloc(0);
  #inHead = true;
  /** Chunked: bytes left of the current chunk's data; sized: bytes left of the body. */
  #left = 0;
  #chunked = false;
  /** Chunked: the text of a size line or trailer line being read (CRLF-terminated). */
  #line = '';
  /** Chunked: what comes next: a size line, the CRLF after a chunk's data, or trailer lines. */
  #expect: 'size' | 'crlf' | 'trailer' = 'size';

  push(buffer: Buffer, length: number): void {
    let at = 0;
    if (this.#inHead) {
      this.#head = Buffer.concat([this.#head, buffer.subarray(0, length)]);
      const end = this.#head.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.#startBody(this.#head.subarray(0, end).toString('latin1'));
      // What followed the head in this read is body.
      at = length - (this.#head.length - (end + 4));
      this.#inHead = false;
    }
    while (at < length && !this.done) {
      if (!this.#chunked || this.#left > 0) {
        const take = Math.min(this.#left, length - at);
        this.bytes += take;
        this.#left -= take;
        at += take;
        if (!this.#chunked && this.#left === 0) this.done = true;
        else if (this.#left === 0) this.#expect = 'crlf';
        continue;
      }
      const byte = buffer[at++]!;
      if (byte !== 0x0a) {
        this.#line += String.fromCharCode(byte);
        continue;
      }
      const line = this.#line.replace(/\r$/, '');
      this.#line = '';
      if (this.#expect === 'crlf') {
        if (line !== '') throw new Error(`Expected CRLF after a chunk, got ${JSON.stringify(line)}`);
        this.#expect = 'size';
      } else if (this.#expect === 'size') {
        const hex = line.split(';')[0]!.trim();
        const size = /^[0-9a-fA-F]{1,13}$/.test(hex) ? Number.parseInt(hex, 16) : Number.NaN;
        if (!Number.isSafeInteger(size)) throw new Error(`Bad chunk size line ${JSON.stringify(line)}`);
        if (size === 0) this.#expect = 'trailer';
        else this.#left = size;
      } else if (line === '') {
        this.done = true;
      } else {
        const colon = line.indexOf(':');
        this.trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
  }

  #startBody(head: string): void {
    const [statusLine, ...headers] = head.split('\r\n');
    this.status = Number(statusLine?.split(' ')[1]);
    let length: number | undefined;
    for (const header of headers) {
      const colon = header.indexOf(':');
      const name = header.slice(0, colon).trim().toLowerCase();
      const value = header.slice(colon + 1).trim();
      if (name === 'transfer-encoding' && value.toLowerCase().endsWith('chunked')) this.#chunked = true;
      if (name === 'content-length') length = Number(value);
    }
    // Chunked framing wins over a length (RFC 9112); with neither, the body runs to the close.
    if (this.#chunked) return;
    if (length === undefined) this.untilClose = true;
    else if (length === 0) this.done = true;
    this.#left = length ?? Number.POSITIVE_INFINITY;
  }
}

function read(url: URL, token: string): Promise<Result> {
  const counter = new BodyCounter();
  const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      onread: {
        buffer,
        callback: (length: number, data: Uint8Array) => {
          try {
            counter.push(data as Buffer, length);
          } catch (error) {
            socket.destroy();
            reject(error);
            return false;
          }
          if (!counter.done) return true;
          const seconds = (performance.now() - started) / 1000;
          socket.destroy();
          resolve({ status: counter.status, bytes: counter.bytes, seconds, trailers: counter.trailers });
          return false;
        },
      },
    });
    socket.on('error', reject);
    socket.on('end', () => {
      if (counter.untilClose && !counter.done) {
        const seconds = (performance.now() - started) / 1000;
        resolve({ status: counter.status, bytes: counter.bytes, seconds, trailers: counter.trailers });
      } else if (!counter.done)
        reject(new Error(`The connection ended after ${counter.bytes} bytes of the body`));
    });
    socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
        `Authorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
    );
  });
}

const [target, token] = process.argv.slice(2);
if (target === undefined || token === undefined) {
  process.stderr.write('usage: raw-http-read.ts <url> <token>\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await read(new URL(target), token))}\n`);
