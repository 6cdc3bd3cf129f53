/**
 * The catch-up scenario's raw HTTP client, run in a process of its own (`runNodeScript`): one
 * GET over a plain `node:net` socket, its body counted and dropped like `cat > /dev/null`. It
 * reads into one reused buffer (`onread`), so it allocates nothing per read: a `node:http` client
 * allocates and parses a buffer per 64 KiB read and, in the bench's own process, was the bound of
 * this figure (~0.6 GB/s against the server's ~2.4 GB/s to curl on the same machine). The answer
 * is parsed by the CLI's own parser (src/client/http1-response-parser.ts), its body counted as
 * it comes.
 *
 * Usage: node raw-http-read.ts <http://host:port/path> <token>. Prints one JSON document:
 * `{ status, bytes, seconds, trailers }`, where `bytes` counts the body (chunk framing excluded)
 * and `seconds` runs from the connection's start to the body's last byte.
 */
import { connect } from 'node:net';
import { Http1ResponseParser } from '../../src/client/http1-response-parser.ts';

const READ_BUFFER_BYTES = 1024 * 1024;

/** What the reader prints, as one JSON document. */
export interface RawRead {
  status: number;
  bytes: number;
  seconds: number;
  trailers: Readonly<Record<string, string>>;
}

function read(url: URL, token: string): Promise<RawRead> {
  let bytes = 0;
  const parser = new Http1ResponseParser('GET', {
    onBody: (piece) => {
      bytes += piece.length;
    },
  });
  const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const finish = (status: number) => {
      const seconds = (performance.now() - started) / 1000;
      socket.destroy();
      resolve({ status, bytes, seconds, trailers: parser.trailers });
    };
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      onread: {
        buffer,
        callback: (length: number, data: Uint8Array) => {
          try {
            const answer = parser.push(Buffer.from(data.buffer, data.byteOffset, length));
            // The next read reuses the buffer: what the parser keeps for it must not be in it.
            parser.detachPending();
            if (answer === undefined) return true;
            finish(answer.status);
          } catch (error) {
            socket.destroy();
            reject(error);
          }
          return false;
        },
      },
    });
    socket.on('error', reject);
    socket.on('end', () => {
      // A body without a length or chunks runs to the end of the connection.
      const answer = parser.done ? undefined : parser.end();
      if (answer === undefined) return;
      if (typeof answer === 'string') reject(new Error(`The server closed the connection ${answer}`));
      else finish(answer.status);
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
