import { randomFillSync } from 'node:crypto';

/**
 * UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter, then 62 random bits.
 * Ids from one process sort in creation order even within one millisecond (the counter
 * increments; on overflow the timestamp moves on by one), which history paging relies on.
 * Hand-written because core imports only Node built-ins; it is 30 lines.
 */
let lastMs = 0;
let counter = 0;

// Random bytes drawn from a pool refilled 4 KiB at a time: one call into OpenSSL per ~230 ids
// instead of two per id (each id is made on the server's event loop, for every submission).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** `n` fresh random bytes, a view of the pool that nothing else is handed. */
function randomView(n: number): Buffer {
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const view = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return view;
}

export function newJobId(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = randomView(2).readUInt16BE(0) & 0x3ff; // leave room to count up
  } else if (++counter > 0xfff) {
    lastMs += 1;
    counter = 0;
  }
  const bytes = randomView(16);
  bytes.writeUIntBE(lastMs, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function isJobId(value: string): boolean {
  return UUID_V7.test(value);
}

/** The creation time encoded in a job id. */
export function jobIdTime(id: string): Date {
  return new Date(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16));
}
