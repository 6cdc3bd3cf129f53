import { closeSync, read } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { Socket } from 'node:net';
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
  /**
   * Asks for a send buffer of `bytes` on a Unix stream socket, never making it smaller than it
   * is: the size it then has (at most twice net.core.wmem_max), 0 for any other socket (left
   * alone), or -errno. Absent from an addon built before it (a rebuild that failed left the old
   * one): the copies then go on without it.
   */
  widenSendBuffer?(fd: number, bytes: number): number;
}

/**
 * `dist/native/send-file.node` (scripts/build-native.sh), or why it cannot be had. Without it the
 * server copies catch-up reads through its own pooled pages: the same bytes, more slowly.
 */
export function loadSendFile(places?: readonly string[]): { addon: SendFileAddon } | { reason: string } {
  return loadNativeAddon<SendFileAddon>('send-file.node', places);
}

/**
 * The send buffer asked for on a local client's Unix socket at the first copy: each time it fills,
 * the copy waits for the client through the pool and Node (see `send`), so a larger one means
 * fewer waits. The default (208 KiB) held 1 GiB to 2.4-2.9 GB/s here, 2 MiB asked (a 4 MiB
 * buffer) to 4.6-5.1 (see send-file.c). It is kernel memory only for the bytes a client has not
 * read yet; the setting stays with a kept-alive connection's later responses, where it only lets
 * more of them wait in the kernel before Node's own backpressure applies. Only the server's own
 * account reaches its Unix socket (docs/security.md).
 */
const SEND_BUFFER_BYTES = 2 * 1024 * 1024;
/** Bytes per call of the addon: bounds how long one copy holds a thread of libuv's pool. */
const COPY_BYTES = 16 * 1024 * 1024;
/** Bytes written through Node, copied, when the socket is full: the wait for room. */
const PIECE_BYTES = 64 * 1024;
/** Bytes read and written through Node per piece where the kernel cannot copy the file. */
const FALLBACK_PIECE_BYTES = 1024 * 1024;
/** errno values that mean the connection is gone; any other failure of a copy is an error. */
const CLIENT_GONE = new Set([
  'EPIPE',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTCONN',
  'ESHUTDOWN',
]);
/** errno values of a file sendfile(2) cannot read (some file systems): its bytes go through Node. */
const NOT_SUPPORTED = new Set(['EINVAL', 'ENOSYS', 'EOPNOTSUPP', 'ENOTSUP']);

/**
 * Copies in flight at once, server-wide: libuv's pool has four threads, shared with every file
 * operation, and catch-up reads must leave some of them free (a copy of 16 MiB holds one for a
 * few milliseconds).
 */
const MAX_COPIES = 2;
let copying = 0;
const waitingToCopy: (() => void)[] = [];

async function takeCopySlot(): Promise<void> {
  if (copying < MAX_COPIES) {
    copying++;
    return;
  }
  await new Promise<void>((resolve) => waitingToCopy.push(resolve));
}

/** Hands the slot to the next waiting copy, if any. */
function giveCopySlot(): void {
  const next = waitingToCopy.shift();
  if (next) next();
  else copying--;
}

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
  /** Node's descriptor of the socket, duplicated at the first copy (`#own`). */
  readonly #socketFd: number;
  /** The duplicate: undefined until the first copy, -1 when it could not be made. */
  #fd: number | undefined;
  #piece: Buffer | undefined;
  #closed = false;
  /** Set once the kernel refused to copy from a file: the rest goes through Node. */
  #throughNode = false;
  /** Bytes the kernel copied from files (not the pieces written through Node). */
  #kernelBytes = 0;

  private constructor(addon: SendFileAddon, res: ServerResponse, socket: Socket, socketFd: number) {
    this.#addon = addon;
    this.#res = res;
    this.#socket = socket;
    this.#socketFd = socketFd;
  }

  /**
   * A sender for this response, or undefined when its bytes must go through Node: no addon, a
   * TLS socket (the bytes must be encrypted in this process), a socket without a descriptor (an
   * injected request in tests), or one already gone. It holds nothing until its first copy: a
   * read that never sends from files (a running job's) costs no descriptor.
   */
  static for(res: ServerResponse, addon: SendFileAddon | undefined): FileSender | undefined {
    const socket = res.socket;
    if (!addon || !socket || socket.destroyed) return undefined;
    // Only a plain socket (TCP or Unix), never a subclass (TLSSocket, HTTP/2's proxies), and only
    // the response that socket is writing now (not a pipelined one waiting for its turn).
    if (Object.getPrototypeOf(socket) !== Socket.prototype) return undefined;
    if ((socket as unknown as { _httpMessage?: unknown })._httpMessage !== res) return undefined;
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    return new FileSender(addon, res, socket, fd);
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
      if (this.#throughNode) {
        const piece = await this.#readPiece(fd, at, Math.min(left, FALLBACK_PIECE_BYTES));
        if (!(await this.#write(piece))) return false;
        at += piece.length;
        left -= piece.length;
        continue;
      }
      const own = this.#own();
      if (own < 0) {
        // No descriptor to spare (EMFILE): the same bytes go through Node.
        this.#throughNode = true;
        continue;
      }
      const want = Math.min(left, COPY_BYTES);
      await takeCopySlot();
      let copied: { sent: number; full: boolean; errno: number };
      try {
        copied = await this.#addon.sendFile(own, fd, at, want);
      } finally {
        giveCopySlot();
      }
      const { sent, full, errno } = copied;
      at += sent;
      left -= sent;
      this.#kernelBytes += sent;
      if (errno !== 0) {
        const code = getSystemErrorName(-errno);
        if (CLIENT_GONE.has(code)) return false;
        if (NOT_SUPPORTED.has(code) && sent === 0) {
          this.#throughNode = true;
          continue;
        }
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
    // Closed by the server meanwhile (it shuts down): the copy went out, the response did not.
    if (this.#res.destroyed) return false;
    // The chunk's end; the next write through Node (or the response's own end) follows it.
    if (chunked) this.#socket.write('\r\n');
    return true;
  }

  /** Bytes the kernel copied from files so far (the pieces written through Node not counted). */
  get kernelBytes(): number {
    return this.#kernelBytes;
  }

  /** Gives back the socket's duplicate descriptor. Call it once no `send` is in flight. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== undefined && this.#fd >= 0) closeSync(this.#fd);
  }

  /**
   * The socket's duplicate, made at the first copy, with a Unix socket's send buffer widened
   * (`SEND_BUFFER_BYTES`). Never of a destroyed socket: Node may have closed its number already,
   * and a duplicate of it would be of whatever file took it.
   */
  #own(): number {
    if (this.#fd === undefined && this.#socket.destroyed) return -1;
    if (this.#fd === undefined) {
      this.#fd = this.#addon.duplicate(this.#socketFd);
      // A socket that cannot be widened is sent to all the same, only with more waits.
      if (this.#fd >= 0) this.#addon.widenSendBuffer?.(this.#fd, SEND_BUFFER_BYTES);
    }
    return this.#fd;
  }

  /** Writes through Node; true once the bytes reached the kernel, false when the socket failed. */
  #write(data: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      this.#socket.write(data, (err) => resolve(!err));
    });
  }

  #readPiece(fd: number, position: number, length: number): Promise<Buffer> {
    // One piece per sender: the previous one was written (its callback ran) before this read.
    if (!this.#piece || this.#piece.length < length) this.#piece = Buffer.allocUnsafe(length);
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
