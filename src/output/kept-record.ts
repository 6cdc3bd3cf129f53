import { crc32 } from 'node:zlib';
import type { OutputBytes } from '../core/job.ts';

/**
 * `kept.json` as retention writes it: two slots of one fixed-size record each, so that the kept
 * window moves by overwriting bytes the file already has: no new disk block, so it can move (and
 * the punch after it free the disk) when the job's output has filled the disk.
 *
 * A record is 32 bytes, big-endian: 'JWK1', a CRC-32 of the 24 bytes after it, then as u64s
 * (each written as two u32 halves: positions are safe integers) a sequence number and where the
 * stdout and stderr windows start. A stream whose job truncated its file (`fileStart`, see
 * retention.ts) takes a 48-byte record, 'JWK2', with where each stream's file starts as two more
 * u64s after them; a window with no such stream is still written as 'JWK1'. The slots lie 512 bytes apart, in two disk sectors, so that a
 * write torn by a crash can spoil only the slot being written. A move overwrites the slot that does
 * not hold the newest record, with the next sequence number; a reader takes the valid slot with
 * the highest. The slot being written, torn by a crash or read half-written, fails its checksum,
 * and the other one still holds the window before the move, which stays true until the punch that
 * follows the write (made only once the write is on disk).
 *
 * The name is kept from when the file was JSON: a job directory of a past server may still hold
 * that text, which readers still accept (it starts with `{`; a record starts with `J` or, in a
 * reserved file not yet written, zero).
 */

/** The file's size as first made: the second slot's offset and a 'JWK1' record. */
export const KEPT_FILE_BYTES = 544;
/** The most a file can hold: a 'JWK2' record in the second slot. */
export const KEPT_FILE_MAX_BYTES = 560;
const SLOT_OFFSETS = [0, 512] as const;
const RECORD_BYTES = 32;
const RECORD_BYTES_V2 = 48;
const MAGIC = 0x4a574b31; // 'JWK1'
const MAGIC_V2 = 0x4a574b32; // 'JWK2'
const HIGH = 2 ** 32;

export interface KeptRecord {
  readonly sequence: number;
  /**
   * Where each stream's kept window starts (`KeptWindow`), and where each stream's file starts in
   * the stream when its job truncated it (absent: at 0).
   */
  readonly kept: OutputBytes & { readonly fileStart?: OutputBytes };
}

/** The newest valid record of a file's bytes and the slot it is in; undefined when none is valid. */
export function newestKeptRecord(bytes: Buffer): { record: KeptRecord; slot: number } | undefined {
  let newest: { record: KeptRecord; slot: number } | undefined;
  SLOT_OFFSETS.forEach((offset, slot) => {
    const record = decodeSlot(bytes, offset);
    if (record && (!newest || record.sequence > newest.record.sequence)) newest = { record, slot };
  });
  return newest;
}

/** Whether `bytes` are the JSON a past server wrote (`{"stdout":N,"stderr":M}`). */
export function isJsonKeptFile(bytes: Buffer): boolean {
  return bytes[0] === 0x7b;
}

/** The record of `slot`, with its offset in the file. */
export function encodeKeptSlot(record: KeptRecord, slot: number): { bytes: Buffer; offset: number } {
  const fileStart = record.kept.fileStart;
  const v2 = fileStart !== undefined && (fileStart.stdout > 0 || fileStart.stderr > 0);
  const bytes = Buffer.alloc(v2 ? RECORD_BYTES_V2 : RECORD_BYTES);
  bytes.writeUInt32BE(v2 ? MAGIC_V2 : MAGIC, 0);
  writeU64(bytes, 8, record.sequence);
  writeU64(bytes, 16, record.kept.stdout);
  writeU64(bytes, 24, record.kept.stderr);
  if (v2) {
    writeU64(bytes, 32, fileStart.stdout);
    writeU64(bytes, 40, fileStart.stderr);
  }
  bytes.writeUInt32BE(crc32(bytes.subarray(8)), 4);
  return { bytes, offset: SLOT_OFFSETS[slot === 0 ? 0 : 1] };
}

/** A whole file whose first slot holds `record` and whose second holds none. */
export function encodeKeptFile(record: KeptRecord): Buffer {
  const file = Buffer.alloc(KEPT_FILE_BYTES);
  const { bytes, offset } = encodeKeptSlot(record, 0);
  bytes.copy(file, offset);
  return file;
}

function decodeSlot(bytes: Buffer, offset: number): KeptRecord | undefined {
  if (bytes.length < offset + RECORD_BYTES) return undefined;
  const magic = bytes.readUInt32BE(offset);
  const length = magic === MAGIC_V2 ? RECORD_BYTES_V2 : RECORD_BYTES;
  if (bytes.length < offset + length) return undefined;
  const slot = bytes.subarray(offset, offset + length);
  if ((magic !== MAGIC && magic !== MAGIC_V2) || slot.readUInt32BE(4) !== crc32(slot.subarray(8))) {
    return undefined;
  }
  const [sequence, stdout, stderr, fileStdout, fileStderr] = [8, 16, 24, 32, 40]
    .filter((at) => at < length)
    .map((at) => readU64(slot, at));
  if (sequence === undefined || stdout === undefined || stderr === undefined) return undefined;
  if (magic === MAGIC) return { sequence, kept: { stdout, stderr } };
  if (fileStdout === undefined || fileStderr === undefined) return undefined;
  return { sequence, kept: { stdout, stderr, fileStart: { stdout: fileStdout, stderr: fileStderr } } };
}

function writeU64(into: Buffer, at: number, value: number): void {
  into.writeUInt32BE(Math.floor(value / HIGH), at);
  into.writeUInt32BE(value % HIGH, at + 4);
}

/** A u64 that is a safe integer, else undefined. */
function readU64(from: Buffer, at: number): number | undefined {
  const value = from.readUInt32BE(at) * HIGH + from.readUInt32BE(at + 4);
  return Number.isSafeInteger(value) ? value : undefined;
}
