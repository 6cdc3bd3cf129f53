import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Socket } from 'node:net';

/**
 * Each data buffer's HTTP/1.1 chunk (its length in hex, CRLF, the bytes, CRLF), made once: the
 * followers of one job at one cursor share one read (`SharedReads`), so a thousand of them get
 * the same buffer, and each would otherwise have Node frame it again. Kept as long as the buffer.
 */
const chunks = new WeakMap<Buffer, Buffer>();

/** `data` framed as one HTTP/1.1 chunk; the same buffer for the same `data`. Empty data has none. */
export function framedChunk(data: Buffer): Buffer {
  if (data.length === 0) throw new RangeError('An empty chunk would end the body');
  let chunk = chunks.get(data);
  if (!chunk) {
    const head = `${data.length.toString(16)}\r\n`;
    chunk = Buffer.allocUnsafe(head.length + data.length + 2);
    chunk.write(head, 0, 'latin1');
    data.copy(chunk, head.length);
    chunk.write('\r\n', head.length + data.length, 'latin1');
    chunks.set(data, chunk);
  }
  return chunk;
}

/**
 * Writes the body of a chunked response straight to its socket, each buffer framed once
 * (`framedChunk`) and written as one buffer. Why: a followed job's every wakeup is a write per
 * follower, and through `res.write` each costs Node four writes corked into one writev, a tick to
 * uncork, and the length converted from a string; with a thousand followers (`npm run bench --
 * fan-out`) that machinery was a sizeable share of the server's CPU per round. The bytes on the
 * wire are the same: Node's own chunk framing, and its end of the body (`res.end()`, with any
 * trailers) written after them through the same socket.
 *
 * Only for a response that Node has nothing of buffered and whose socket writes it now (see
 * `for`); anything else goes through `res.write`.
 */
export class DirectChunks {
  readonly #res: ServerResponse;
  readonly #socket: Socket;

  private constructor(res: ServerResponse, socket: Socket) {
    this.#res = res;
    this.#socket = socket;
  }

  /**
   * A writer for `res`, once its head was written to the socket (`flushHeaders`), or undefined
   * when its body must go through Node: not chunked (an HTTP/1.0 client), a HEAD (no body), no
   * socket, one gone, a stand-in (an injected request's), or a socket that writes another
   * response first (pipelining).
   */
  static for(res: ServerResponse): DirectChunks | undefined {
    const socket = res.socket;
    // `headersSent` is true once the head is made; `_headerSent` once it was written to the socket.
    const headWritten = (res as unknown as { _headerSent?: boolean })._headerSent === true;
    // A real socket (TCP, Unix, TLS), not a stand-in such as an injected request's, whose
    // response collects only what goes through `res.write`.
    if (!(socket instanceof Socket) || socket.destroyed || !headWritten || !res.chunkedEncoding)
      return undefined;
    if (res.req?.method === 'HEAD') return undefined;
    if ((socket as unknown as { _httpMessage?: unknown })._httpMessage !== res) return undefined;
    return new DirectChunks(res, socket);
  }

  /**
   * Writes `data` as the body's next chunk, then waits for the socket to drain if it is full (or
   * for `signal`: the client left). Falls back to `res.write` for bytes Node holds in the
   * response itself, so that nothing overtakes them.
   */
  async write(data: Buffer, signal: AbortSignal): Promise<void> {
    const res = this.#res;
    const socket = this.#socket;
    if (res.destroyed || socket.destroyed || data.length === 0) return;
    const written =
      res.writableLength === socket.writableLength ? socket.write(framedChunk(data)) : res.write(data);
    if (written) return;
    await once(socket, 'drain', { signal }).catch(() => undefined);
  }
}
