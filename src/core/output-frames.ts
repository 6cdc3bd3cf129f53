/**
 * The binary form of a job's output view (`Accept: application/vnd.jobworker.output-frames`),
 * shared by the server that writes it and the clients that read it. Server-sent events carry
 * each chunk as base64 inside JSON, which costs a reader more CPU than the bytes are worth on a
 * catch-up of hundreds of megabytes; raw bytes lose which stream a chunk of the `all` view came
 * from. Frames keep both: bytes as they are, each run tagged with its stream and its cursor.
 *
 * A frame is a 13-byte header and a payload:
 *
 * | offset | size | field                                                             |
 * |--------|------|-------------------------------------------------------------------|
 * | 0      | 1    | kind: 1 stdout, 2 stderr, 3 truncated, 4 end                      |
 * | 1      | 8    | cursor in the view just after this frame (unsigned, big-endian)   |
 * | 9      | 4    | payload length in bytes (unsigned, big-endian)                    |
 *
 * Payloads: the bytes themselves (stdout, stderr); JSON `{stream, skippedBytes}` (truncated);
 * JSON `{job}` (end, the last frame, only when the job ended while the response was open).
 * Unknown kinds are skipped by readers, so later versions may add frames.
 */

export const OUTPUT_FRAMES_TYPE = 'application/vnd.jobworker.output-frames';

export const FRAME_HEADER_BYTES = 13;

/** The largest payload a reader accepts: data frames are at most one read batch (a few MiB). */
export const MAX_FRAME_PAYLOAD = 64 * 1024 * 1024;

export const FRAME_KIND = { stdout: 1, stderr: 2, truncated: 3, end: 4 } as const;

export type FrameKind = (typeof FRAME_KIND)[keyof typeof FRAME_KIND];

export interface OutputFrame {
  /** A kind of `FRAME_KIND`, or another number from a later server (skip it). */
  readonly kind: number;
  /** Where the view resumes after this frame. */
  readonly cursor: number;
  readonly payload: Buffer;
}

/** The header of a frame whose payload of `length` bytes follows. */
export function frameHeader(kind: FrameKind, cursor: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt8(kind, 0);
  header.writeBigUInt64BE(BigInt(cursor), 1);
  header.writeUInt32BE(length, 9);
  return header;
}

/** A whole frame with a JSON payload (truncated, end). */
export function jsonFrame(kind: FrameKind, cursor: number, value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value));
  return Buffer.concat([frameHeader(kind, cursor, payload.length), payload]);
}

export class FrameFormatError extends Error {}

/**
 * Splits a byte stream into frames, whatever the chunking: feed it chunks as they arrive and it
 * returns the frames they completed. A payload that arrived in one chunk is returned as a view
 * of that chunk (no copy); only a payload split across chunks is copied once.
 */
export class FrameDecoder {
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  push(chunk: Buffer): OutputFrame[] {
    let buffer = chunk;
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      // Join only once the whole frame is here, so a large payload in many chunks is copied once.
      if (!this.#complete()) return [];
      buffer = Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    const frames: OutputFrame[] = [];
    let offset = 0;
    while (buffer.length - offset >= FRAME_HEADER_BYTES) {
      const length = payloadLength(buffer, offset);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > buffer.length) break;
      const cursor = Number(buffer.readBigUInt64BE(offset + 1));
      if (!Number.isSafeInteger(cursor))
        throw new FrameFormatError(`A frame's cursor ${cursor} is out of range`);
      frames.push({
        kind: buffer[offset]!,
        cursor,
        payload: buffer.subarray(offset + FRAME_HEADER_BYTES, end),
      });
      offset = end;
    }
    if (offset < buffer.length) {
      const rest = buffer.subarray(offset);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
    }
    return frames;
  }

  /** Bytes of an incomplete frame held back: nonzero when a stream ends, it was cut mid-frame. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Whether the held-back chunks hold at least one whole frame. */
  #complete(): boolean {
    if (this.#pendingBytes < FRAME_HEADER_BYTES) return false;
    const head =
      this.#pending[0]!.length >= FRAME_HEADER_BYTES
        ? this.#pending[0]!
        : Buffer.concat(this.#pending, this.#pendingBytes).subarray(0, FRAME_HEADER_BYTES);
    return this.#pendingBytes >= FRAME_HEADER_BYTES + payloadLength(head, 0);
  }
}

function payloadLength(buffer: Buffer, offset: number): number {
  const length = buffer.readUInt32BE(offset + 9);
  if (length > MAX_FRAME_PAYLOAD) {
    throw new FrameFormatError(
      `A frame announces ${length} bytes, more than the ${MAX_FRAME_PAYLOAD} allowed`,
    );
  }
  return length;
}
