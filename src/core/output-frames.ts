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
 * | 0      | 1    | kind: 1 stdout, 2 stderr, 3 truncated, 4 end, 5 heartbeat         |
 * | 1      | 8    | cursor in the view just after this frame (unsigned, big-endian)   |
 * | 9      | 4    | payload length in bytes (unsigned, big-endian)                    |
 *
 * Payloads: the bytes themselves (stdout, stderr); JSON `{stream, skippedBytes}` (truncated);
 * JSON `{job}` (end, the last frame, only when the job ended while the response was open);
 * none (heartbeat: a follow that had nothing to send for a while; its cursor is the view's
 * position, unchanged).
 * Unknown kinds are skipped by readers, so later versions may add frames.
 */

export const OUTPUT_FRAMES_TYPE = 'application/vnd.jobworker.output-frames';

/**
 * The header of a follow's answer (frames or server-sent events) that gives the period of its
 * heartbeats in milliseconds (frame kind 5, an SSE comment): the first comes one to two periods
 * after the last output (`withHeartbeats`), then one every period while the job stays quiet.
 * Absent from servers that send none.
 */
export const HEARTBEAT_HEADER = 'X-Jobworker-Heartbeat-Ms';

/**
 * Heartbeat periods a follower lets pass without a byte before it takes its connection for lost
 * (a proxy or NAT that dropped it without a reset) and reconnects from its cursor.
 */
export const SILENT_PERIODS = 3;

export const FRAME_HEADER_BYTES = 13;

/** The largest payload a reader accepts: data frames are at most one read batch (a few MiB). */
export const MAX_FRAME_PAYLOAD = 64 * 1024 * 1024;

export const FRAME_KIND = { stdout: 1, stderr: 2, truncated: 3, end: 4, heartbeat: 5 } as const;

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

export class FrameFormatError extends Error {
  override name = 'FrameFormatError';
}

export interface FrameDecoderOptions {
  /**
   * Return the payload of a stdout or stderr frame in pieces as its bytes arrive, each piece a
   * frame of the same kind whose `cursor` is the view's position just after its last byte (a
   * position in the view like any other, to resume from). Nothing is copied or held back: a
   * reader printing a catch-up of hundreds of megabytes writes each socket read as it comes,
   * instead of joining a megabyte of reads per frame first. Other frames come whole. Default false.
   */
  readonly splitData?: boolean;
}

/**
 * Splits a byte stream into frames, whatever the chunking: feed it chunks as they arrive and it
 * returns the frames they completed. A payload that arrived in one chunk is returned as a view
 * of that chunk (no copy); only a payload split across chunks is copied once (or, with
 * `splitData`, returned piece by piece).
 */
export class FrameDecoder {
  readonly #splitData: boolean;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** How many of the first `#pending` chunks are copies of their own (`detachPending`). */
  #detached = 0;
  /** splitData: the data frame being returned in pieces (its kind, and the view's position after it), and the bytes of it still to come. */
  #data: { readonly kind: number; readonly cursor: number; left: number } | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.#splitData = options.splitData === true;
  }

  push(chunk: Buffer): OutputFrame[] {
    const frames: OutputFrame[] = [];
    let buffer = chunk;
    if (this.#data !== undefined) {
      buffer = this.#continueData(buffer, frames);
      if (buffer.length === 0) return frames;
    }
    if (this.#pendingBytes > 0) {
      this.#pending.push(buffer);
      this.#pendingBytes += buffer.length;
      // Join only once the whole frame is here (or, splitting data, its header), so a large
      // payload in many chunks is copied once.
      if (!this.#complete()) return frames;
      buffer = Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#detached = 0;
    }
    let offset = 0;
    while (buffer.length - offset >= FRAME_HEADER_BYTES) {
      const kind = buffer[offset]!;
      const length = payloadLength(buffer, offset);
      const end = offset + FRAME_HEADER_BYTES + length;
      const cursor = Number(buffer.readBigUInt64BE(offset + 1));
      if (!Number.isSafeInteger(cursor))
        throw new FrameFormatError(`A frame's cursor ${cursor} is out of range`);
      if (end > buffer.length) {
        if (!this.#splitData || !isData(kind)) break;
        // The first piece of a data frame: what of its payload this chunk holds.
        this.#data = { kind, cursor, left: length };
        this.#continueData(buffer.subarray(offset + FRAME_HEADER_BYTES), frames);
        return frames;
      }
      frames.push({ kind, cursor, payload: buffer.subarray(offset + FRAME_HEADER_BYTES, end) });
      offset = end;
    }
    if (offset < buffer.length) {
      const rest = buffer.subarray(offset);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
      this.#detached = 0;
    }
    return frames;
  }

  /**
   * Copies what is held for the next `push` (the start of a frame cut by the end of a chunk) out
   * of the chunk it came in: for a caller that reads into one reused buffer.
   */
  detachPending(): void {
    // Only what came since the last call: the rest was copied then (each byte is copied once).
    for (let i = this.#detached; i < this.#pending.length; i++)
      this.#pending[i] = Buffer.from(this.#pending[i]!);
    this.#detached = this.#pending.length;
  }

  /** Bytes of an incomplete frame held back: nonzero when a stream ends, it was cut mid-frame. */
  get pendingBytes(): number {
    return this.#pendingBytes + (this.#data?.left ?? 0);
  }

  /** Returns the next piece of the data frame being split; what follows it in `chunk`, if anything. */
  #continueData(chunk: Buffer, frames: OutputFrame[]): Buffer {
    const data = this.#data!;
    const take = Math.min(data.left, chunk.length);
    data.left -= take;
    if (take > 0) {
      frames.push({ kind: data.kind, cursor: data.cursor - data.left, payload: chunk.subarray(0, take) });
    }
    if (data.left === 0) this.#data = undefined;
    return chunk.subarray(take);
  }

  /** Whether the held-back chunks hold at least one whole frame (or, splitting, a data frame's header). */
  #complete(): boolean {
    if (this.#pendingBytes < FRAME_HEADER_BYTES) return false;
    const head =
      this.#pending[0]!.length >= FRAME_HEADER_BYTES
        ? this.#pending[0]!
        : Buffer.concat(this.#pending, this.#pendingBytes).subarray(0, FRAME_HEADER_BYTES);
    if (this.#splitData && isData(head[0]!)) return true;
    return this.#pendingBytes >= FRAME_HEADER_BYTES + payloadLength(head, 0);
  }
}

function isData(kind: number): boolean {
  return kind === FRAME_KIND.stdout || kind === FRAME_KIND.stderr;
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
