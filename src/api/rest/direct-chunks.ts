import { once } from 'node:events';
import { ServerResponse } from 'node:http';
import { Socket } from 'node:net';

/**
 * Batches framed as HTTP/1.1 chunks, by what their writer named as their source (`write`'s and
 * `writeText`'s `shared`: a read's events array for raw output, the frames made of it for frames,
 * the events made of it for an event stream, else a lone data buffer). The followers of one job
 * at one cursor share one read (`SharedReads`): a thousand of them get the same array and
 * buffers, and each would otherwise frame them again. A framed copy lives as long as its source:
 * a shared read is kept until the job's next growth (up to 8 of 64 KiB per followed job), with a
 * chunk for each kind of follower it has (raw, frames, events). An event stream's chunk is base64,
 * about 1.4 times its read, and the writer keeps the text it was encoded from as long (for
 * followers written through Node): some 2.8 times the read where event streams follow.
 */
const framedBy = new WeakMap<object, Buffer>();

/** `parts`, in order, as one HTTP/1.1 chunk (length in hex, CRLF, the bytes, CRLF) in one buffer. */
export function framedChunk(parts: readonly Buffer[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  if (length === 0) throw new RangeError('An empty chunk would end the body');
  const head = `${length.toString(16)}\r\n`;
  const chunk = Buffer.allocUnsafe(head.length + length + 2);
  let at = chunk.write(head, 0, 'latin1');
  for (const part of parts) at += part.copy(chunk, at);
  chunk.write('\r\n', at, 'latin1');
  return chunk;
}

/** `text` (UTF-8) framed as one HTTP/1.1 chunk: one buffer, the text encoded straight into it. */
export function framedText(text: string): Buffer {
  const length = Buffer.byteLength(text);
  if (length === 0) throw new RangeError('An empty chunk would end the body');
  const head = `${length.toString(16)}\r\n`;
  const chunk = Buffer.allocUnsafe(head.length + length + 2);
  chunk.write(head, 0, 'latin1');
  chunk.write(text, head.length, 'utf8');
  chunk.write('\r\n', head.length + length, 'latin1');
  return chunk;
}

/**
 * `res.write(data)`; when the response then holds what its socket could not take yet, waits for
 * its drain (or for `signal`: the client left).
 */
export async function writeThroughNode(
  res: ServerResponse,
  data: Buffer | string,
  signal: AbortSignal,
): Promise<void> {
  if (res.write(data)) return;
  await once(res, 'drain', { signal }).catch(() => undefined);
}

/**
 * Writes the body of a chunked HTTP/1.1 response straight to its socket, each batch framed once
 * (`framedChunk`, `framedText`) and written as one buffer. Why: a followed job's every wakeup is a
 * write per follower, and through `res.write` each costs Node four writes corked into one writev,
 * a tick to uncork, and the length converted from a string; with a thousand followers (`npm run
 * bench -- fan-out`) that machinery was a sizeable share of the server's CPU per round. The bytes
 * on the wire are the same: Node's own chunk framing, and its end of the body (`res.end()`, with
 * any trailers) written after them through the same socket. The cost: a batch is copied once into
 * its chunk, where `res.write` hands the kernel its buffers as they are.
 *
 * A write goes through `res.write` instead whenever Node might hold bytes of the response that
 * must go first, or no longer writes this response to that socket (see `#direct`).
 */
export class DirectChunks {
  readonly #res: ServerResponse;
  readonly #socket: Socket;

  private constructor(res: ServerResponse, socket: Socket) {
    this.#res = res;
    this.#socket = socket;
  }

  /**
   * A writer for `res` once its head was handed on (`flushHeaders` or a first write: Node then
   * wrote it to the socket, or holds it in the response, which `#direct` sees), or undefined
   * before that, or when its body must go through Node:
   * not an HTTP/1 response on a real socket (HTTP/2's responses, an injected request's stand-in),
   * a socket gone, or a body without chunks (HEAD, 204 and 304 have none; an HTTP/1.0 client gets
   * the bytes unframed). A pipelined response has no socket until its turn, so it gets none.
   */
  static for(res: ServerResponse): DirectChunks | undefined {
    if (!(res instanceof ServerResponse)) return undefined;
    const socket = res.socket;
    // Not `headersSent`, true as soon as the head is made: a byte written then would precede it.
    const headHandedOn = (res as unknown as { _headerSent?: boolean })._headerSent === true;
    if (!(socket instanceof Socket) || socket.destroyed || !headHandedOn || !res.chunkedEncoding) {
      return undefined;
    }
    return new DirectChunks(res, socket);
  }

  /**
   * Writes `parts` as the body's next chunk (`shared`: what they came from, the same for every
   * follower of one read, so that they are framed once; it must stand for these same parts
   * wherever it is given: only the raw writer keys by a read's events array, the frames writer by
   * the frames it made of it), then waits for room if the socket is full (or for `signal`: the
   * client left).
   */
  write(parts: readonly Buffer[], signal: AbortSignal, shared?: object): Promise<void> {
    if (this.#res.destroyed || parts.every((part) => part.length === 0)) return Promise.resolve();
    if (!this.#direct())
      return writeThroughNode(this.#res, parts.length === 1 ? parts[0]! : Buffer.concat(parts), signal);
    const key = shared ?? (parts.length === 1 ? parts[0]! : undefined);
    let chunk = key && framedBy.get(key);
    if (!chunk) {
      chunk = framedChunk(parts);
      if (key) framedBy.set(key, chunk);
    }
    return this.#toSocket(chunk, signal);
  }

  /**
   * `write` for text (UTF-8): an event stream's events, encoded once into their chunk (`shared`:
   * what the text was made of, the same for every follower of one read, as for `write`; the
   * event-stream writer keys by the batch it made of a read).
   */
  writeText(text: string, signal: AbortSignal, shared?: object): Promise<void> {
    if (this.#res.destroyed || text === '') return Promise.resolve();
    if (!this.#direct()) return writeThroughNode(this.#res, text, signal);
    let chunk = shared && framedBy.get(shared);
    if (!chunk) {
      chunk = framedText(text);
      if (shared) framedBy.set(shared, chunk);
    }
    return this.#toSocket(chunk, signal);
  }

  /**
   * Whether a write may go to the socket now: Node still writes this response to it, nothing has
   * ended it, and Node holds none of its bytes (a head not yet flushed, corked chunks: the
   * response's `writableLength` counts them, the socket's does not). Checked at each write: a
   * client that half-closes makes Node end the socket, after which it takes no more writes.
   */
  #direct(): boolean {
    const res = this.#res;
    const socket = this.#socket;
    return (
      (socket as unknown as { _httpMessage?: unknown })._httpMessage === res &&
      socket.writable &&
      !res.writableEnded &&
      res.writableLength === socket.writableLength
    );
  }

  async #toSocket(chunk: Buffer, signal: AbortSignal): Promise<void> {
    if (this.#socket.write(chunk)) return;
    await once(this.#socket, 'drain', { signal }).catch(() => undefined);
  }
}
