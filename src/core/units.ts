import { ValidationError } from './errors.ts';

/**
 * The one parser of the units limits are written in (spec, CLI flags, queue and user settings,
 * `serve --default-limits`): sizes with binary suffixes and CPU in cores or millicores.
 */

const SIZE = /^(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?$/i;
const POWERS: Readonly<Record<string, number>> = { '': 0, K: 1, M: 2, G: 3, T: 4, P: 5 };

/**
 * A size in bytes: an integer number of bytes, or text like `256M`, `1.5G`, `512Ki`, `64MiB`.
 * K, M, G, T are powers of 1024 with or without the `i` (as memory is counted by the kernel,
 * docker and systemd). Throws a `ValidationError` on `field` naming what was expected.
 */
export function parseBytes(field: string, value: unknown, min = 0): number {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    const match = SIZE.exec(value.trim());
    if (!match)
      throw ValidationError.expected(field, 'a size like `256M`, `1G`, `512Ki` or a number of bytes', value);
    const power = POWERS[match[2]!.toUpperCase()] ?? 0;
    if (power === 0 && match[1]!.includes('.')) {
      throw ValidationError.expected(
        field,
        'a whole number of bytes, or a size with a unit like `1.5G`',
        value,
      );
    }
    bytes = Math.round(Number(match[1]) * 1024 ** power);
  } else {
    throw ValidationError.expected(field, 'a size like `256M`, `1G`, `512Ki` or a number of bytes', value);
  }
  if (!Number.isSafeInteger(bytes) || bytes < min) {
    throw ValidationError.expected(field, `a whole number of bytes of at least ${formatBytes(min)}`, value);
  }
  return bytes;
}

/**
 * CPU in cores, to a thousandth: a number (`0.5`, `2`), the same as text, or millicores (`500m`).
 * At least 0.01 (a quota below 1 ms in 100 ms is not one the kernel keeps well).
 */
export function parseCpu(field: string, value: unknown): number {
  const expected = 'CPU cores like `0.5`, `2` or millicores like `500m`, at least 0.01';
  let millis: number;
  if (typeof value === 'number') millis = value * 1000;
  else if (typeof value === 'string' && /^\d+m$/.test(value.trim()))
    millis = Number(value.trim().slice(0, -1));
  else if (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim())) millis = Number(value) * 1000;
  else throw ValidationError.expected(field, expected, value);
  if (!Number.isFinite(millis) || millis < 10 || millis > 1_000_000) {
    throw ValidationError.expected(field, expected, value);
  }
  return Math.round(millis) / 1000;
}

/** A positive integer count (pids, IO operations per second, a weight), as a number or digits. */
export function parseCount(field: string, value: unknown, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw ValidationError.expected(field, `an integer from ${min} to ${max}`, value);
  }
  return n;
}

/** `64 MiB`, `1.5 GiB`, `512 B`: sizes as the messages and the CLI show them. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit++;
  }
  if (value >= 1024 && unit < units.length - 1) {
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return `${Number(value.toFixed(2))} ${units[unit]}`;
  }
  return `${value} ${units[unit]}`;
}

/** `0.5 CPU`, `2 CPUs`. */
export function formatCpu(cores: number): string {
  return `${cores} CPU${cores === 1 ? '' : 's'}`;
}
