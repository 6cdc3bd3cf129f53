import { closeSync, read } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { loadNativeAddon } from '../../core/native-addon.ts';

/** What src/api/rest/native/send-file.c exports. */
export interface SendFileAddon {
  /**
   * Copies up to `length` bytes of `fileFd` from `position` to `socketFd` on a pool thread.
   * `full`: it stopped because the socket's buffer was full; `errno`: it failed (0 otherwise).
   * Fewer bytes with neither means the file ended.
   */
  sendFile(
    socketFd: number,
    fileFd: number,
    position: number,
    length: number,
  ): Promise<{ sent: number; full: boolean; errno: number }>;
  /** A new descriptor (closed on exec) of the same open file, or -errno. */
  duplicate(fd: number): number;
}

/**
 * `dist/native/send-file.node` (scripts/build-native.sh), or why it cannot be had. Without it the
 * server copies catch-up reads through its own pooled pages: the same bytes, more slowly.
 */
export function loadSendFile(places?: readonly string[]): { addon: SendFileAddon } | { reason: string } {
  return loadNativeAddon<SendFileAddon>('send-file.node', places);
}

/** Bytes per call of the addon: bounds how long one copy holds a thread of libuv's pool. */
const COPY_BYTES = 16 * 1024 * 1024;
/** Bytes written through Node, copied, when the socket is full: the wait for room. */
const PIECE_BYTES = 64 * 1024;
/** errno values that mean the client went away; any other failure of a copy is an error. */
const CLIENT_GONE = new Set(['EPIPE', 'ECONNRESET']);

/**
 * Sends the body of one streamed response partly from files, inside the kernel (sendfile(2)):
 * a catch-up read of a finished output, whose bytes would otherwise be read into the server's
 * memory and written out again. The body stays what Node would have sent: each span is one HTTP
 * chunk when the response is chunked, the bytes as they are otherwise.
 *
 * It copies on a descriptor of its own (a duplicate of the socket's), so Node closing the socket
 * (the client reset it, the server closes) can never turn a copy in flight into a write to
 * another file; `close()` gives it back. While a copy runs nothing else may write to the socket:
 * the writer awaits each `send`, and Node's response writes only when the writer asks it to.
 */
export class FileSender {
  readonly #addon: SendFileAddon;
  readonly #res: ServerResponse;
  readonly #socket: Socket;
  readonly #fd: number;
  #piece: Buffer | undefined;
  #closed = false;

  private constructor(addon: SendFileAddon, res: ServerResponse, socket: Socket, fd: number) {
    this.#addon = addon;
    this.#res = res;
    this.#socket = socket;
    this.#fd = fd;
  }

  /**
   * A sender for this response, or undefined when its bytes must go through Node: no addon, a
   * TLS socket (the bytes must be encrypted in this process), a socket without a descriptor (an
   * injected request in tests), or one already gone.
   */
  static for(res: ServerResponse, addon: SendFileAddon | undefined): FileSender | undefined {
    const socket = res.socket;
    if (!addon || !socket || socket.destroyed || 'encrypted' in socket) return undefined;
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    const own = addon.duplicate(fd);
    return own < 0 ? undefined : new FileSender(addon, res, socket, own);
  }

  /**
   * Sends `prefix` (a frame header, written through Node), then `length` bytes of the open file
   * `fd` from `position`, as the body's next bytes; the response's headers must have been
   * written. Resolves true once all of it reached the kernel, false when the client is gone
   * (nothing more should be sent). Rejects when the copy fails otherwise (the file ended early,
   * or a descriptor is bad): the response is then broken and must be destroyed. It resolves only
   * after every copy it started has finished, so `fd` may be closed once it has.
   */
  async send(prefix: Buffer | undefined, fd: number, position: number, length: number): Promise<boolean> {
    if (this.#closed) throw new Error('FileSender: send after close');
    const size = (prefix?.length ?? 0) + length;
    if (size === 0) return true;
    const chunked = this.#res.chunkedEncoding;
    const head = chunked ? Buffer.from(`${size.toString(16)}\r\n`, 'latin1') : undefined;
    const opening = head && prefix ? Buffer.concat([head, prefix]) : (head ?? prefix);
    // Through Node, and waited for: once it reached the kernel, so did everything before it (the
    // headers, earlier chunks), and the socket is the copy's alone.
    if (opening && !(await this.#write(opening))) return false;
    let at = position;
    let left = length;
    while (left > 0) {
      if (this.#res.destroyed) return false;
      const want = Math.min(left, COPY_BYTES);
      const { sent, full, errno } = await this.#addon.sendFile(this.#fd, fd, at, want);
      at += sent;
      left -= sent;
      if (errno !== 0) {
        const code = getSystemErrorName(-errno);
        if (CLIENT_GONE.has(code)) return false;
        throw Object.assign(new Error(`sendfile to the client failed: ${code}`), { code, errno: -errno });
      }
      if (left === 0) break;
      if (!full && sent < want) {
        throw new Error(`Output file ended at ${at}, before ${position + length}`);
      }
      // The socket is full. Node cannot be asked to wait for room without writing, so the next
      // piece goes through it: once that is written, there is room again.
      if (full) {
        const piece = await this.#readPiece(fd, at, Math.min(left, PIECE_BYTES));
        if (!(await this.#write(piece))) return false;
        at += piece.length;
        left -= piece.length;
      }
    }
    // The chunk's end; the next write through Node (or the response's own end) follows it.
    if (chunked) this.#socket.write('\r\n');
    return true;
  }

  /** Gives back the socket's duplicate descriptor. Call it once no `send` is in flight. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }

  /** Writes through Node; true once the bytes reached the kernel, false when the socket failed. */
  #write(data: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      this.#socket.write(data, (err) => resolve(!err));
    });
  }

  #readPiece(fd: number, position: number, length: number): Promise<Buffer> {
    // One piece per sender: the previous one was written (its callback ran) before this read.
    this.#piece ??= Buffer.allocUnsafe(PIECE_BYTES);
    const piece = this.#piece;
    return new Promise((resolve, reject) => {
      read(fd, piece, 0, length, position, (err, bytesRead) => {
        if (err) reject(err);
        else if (bytesRead === 0) reject(new Error(`Output file ended at ${position}`));
        else resolve(piece.subarray(0, bytesRead));
      });
    });
  }
}
