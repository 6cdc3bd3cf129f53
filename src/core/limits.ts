import { ValidationError } from './errors.ts';
import type { IoLimits, JobLimits } from './job.ts';
import { formatBytes, formatCpu, parseBytes, parseCount, parseCpu } from './units.ts';

/**
 * Job resource limits as written (spec, queue and user settings, `serve --default-limits`) and
 * how a job's own, its queue's, its user's and the server's combine (docs/isolation.md).
 */

/** Defaults and maxima of a queue, a user or the server: each applies field by field. */
export interface LimitSettings {
  /** What a job that sets a limit not gets. */
  readonly defaults: JobLimits;
  /** What no job may exceed; a job with no such limit gets the maximum as its limit. */
  readonly maxima: JobLimits;
}

export const NO_LIMIT_SETTINGS: LimitSettings = { defaults: {}, maxima: {} };

const LIMIT_FIELDS = ['cpu', 'memory', 'memorySwap', 'io', 'pids'] as const;
const IO_FIELDS = ['readBps', 'writeBps', 'readIops', 'writeIops', 'device', 'weight'] as const;
/** Upper bound of pids: the kernel's own ceiling (PID_MAX_LIMIT). */
const MAX_PIDS = 4 * 1024 * 1024;

/**
 * Checks limits as submitted and returns their normalized form. Accepts the documented fields
 * (`cpu`, `memory`, `memorySwap`, `io`, `pids`, with units) and API v1's `memoryBytes` and
 * `cpuMillis` (integers), which become `memory` and `cpu`; giving both forms of one limit is refused.
 */
export function normalizeLimits(field: string, value: unknown): JobLimits {
  if (!isPlainObject(value)) throw ValidationError.expected(field, 'an object', value);
  const out: { -readonly [K in keyof JobLimits]: JobLimits[K] } = {};
  for (const [key, val] of Object.entries(value)) {
    const name = `${field}.${key}`;
    if (val === undefined) continue;
    switch (key) {
      case 'cpu':
        out.cpu = parseCpu(name, val);
        break;
      case 'cpuMillis':
        if (typeof val !== 'number' || !Number.isSafeInteger(val) || val < 10) {
          throw ValidationError.expected(name, 'an integer of at least 10', val);
        }
        out.cpu = parseCpu(name, val / 1000);
        break;
      case 'memory':
        out.memory = parseBytes(name, val, 1024 * 1024);
        break;
      case 'memoryBytes':
        if (typeof val !== 'number' || !Number.isSafeInteger(val)) {
          throw ValidationError.expected(name, `an integer of at least ${1024 * 1024}`, val);
        }
        out.memory = parseBytes(name, val, 1024 * 1024);
        break;
      case 'memorySwap':
        out.memorySwap = parseBytes(name, val);
        break;
      case 'pids':
        out.pids = parseCount(name, val, 1, MAX_PIDS);
        break;
      case 'io':
        out.io = normalizeIo(name, val);
        break;
      default:
        throw new ValidationError(
          name,
          `Unknown field \`${name}\` (expected one of ${LIMIT_FIELDS.join(', ')})`,
        );
    }
  }
  if ('cpu' in value && 'cpuMillis' in value) {
    throw new ValidationError(
      `${field}.cpuMillis`,
      `Give \`${field}.cpu\` or \`${field}.cpuMillis\`, not both`,
    );
  }
  if ('memory' in value && 'memoryBytes' in value) {
    throw new ValidationError(
      `${field}.memoryBytes`,
      `Give \`${field}.memory\` or \`${field}.memoryBytes\`, not both`,
    );
  }
  return out;
}

function normalizeIo(field: string, value: unknown): IoLimits {
  if (!isPlainObject(value)) {
    throw ValidationError.expected(
      field,
      'an object `{readBps?, writeBps?, readIops?, writeIops?, device?}` or `{weight}`',
      value,
    );
  }
  const out: { -readonly [K in keyof IoLimits]: IoLimits[K] } = {};
  for (const [key, val] of Object.entries(value)) {
    const name = `${field}.${key}`;
    if (val === undefined) continue;
    if (key === 'readBps' || key === 'writeBps') out[key] = parseBytes(name, val, 1);
    else if (key === 'readIops' || key === 'writeIops') out[key] = parseCount(name, val);
    else if (key === 'weight') out.weight = parseCount(name, val, 1, 10_000);
    else if (key === 'device') {
      if (typeof val !== 'string' || !val.startsWith('/') || val.includes('\0') || val.length > 4096) {
        throw ValidationError.expected(name, 'the absolute path of a block device, like `/dev/vda`', val);
      }
      out.device = val;
    } else {
      throw new ValidationError(name, `Unknown field \`${name}\` (expected one of ${IO_FIELDS.join(', ')})`);
    }
  }
  const throttles = out.readBps ?? out.writeBps ?? out.readIops ?? out.writeIops;
  if (out.weight !== undefined && (throttles !== undefined || out.device !== undefined)) {
    throw new ValidationError(
      `${field}.weight`,
      `Give \`${field}.weight\` alone, or throttles (readBps, writeBps, readIops, writeIops, device): not both`,
    );
  }
  if (out.weight === undefined && throttles === undefined) {
    throw ValidationError.expected(
      field,
      'at least one of readBps, writeBps, readIops, writeIops or weight',
      value,
    );
  }
  return out;
}

/**
 * Limits written as one line, `memory=1G,cpu=2,pids=512,io.writeBps=10M` (`serve --default-limits`,
 * and the CLI's queue and user settings): the same fields and units as a spec's `limits`.
 */
export function parseLimitsList(field: string, text: string): JobLimits {
  const object: Record<string, unknown> = {};
  const io: Record<string, unknown> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw ValidationError.expected(field, 'entries like `memory=1G,cpu=2,pids=512`', part);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key.startsWith('io.')) io[key.slice(3)] = value;
    else object[key] = value;
  }
  if (Object.keys(io).length > 0) object.io = io;
  return normalizeLimits(field, object);
}

/**
 * A job's limits: each of its own, else its queue's default, else its user's, else the server's
 * (`io` as one whole). Then every maximum (queue's, user's, server's) applies: a limit over one
 * is refused with a `ValidationError` naming the maximum and whose it is; a limit the job still
 * lacks where a maximum is set becomes that maximum, so that no job escapes a maximum by
 * setting nothing.
 */
export function resolveLimits(
  own: JobLimits,
  layers: readonly { readonly source: string; readonly settings: LimitSettings }[],
): JobLimits {
  const out: { -readonly [K in keyof JobLimits]: JobLimits[K] } = { ...own };
  // Every submission comes here, and most servers set no defaults or maxima at all.
  if (layers.every(({ settings }) => isEmpty(settings.defaults) && isEmpty(settings.maxima))) return out;
  for (const { settings } of layers) {
    for (const key of LIMIT_FIELDS) {
      if (out[key] === undefined && settings.defaults[key] !== undefined) {
        (out as Record<string, unknown>)[key] = settings.defaults[key];
      }
    }
  }
  // A limit still missing under a maximum becomes the tightest maximum of all layers.
  for (const key of ['cpu', 'memory', 'memorySwap', 'pids'] as const) {
    if (out[key] !== undefined) continue;
    const maxima = layers.map(({ settings }) => settings.maxima[key]).filter((m) => m !== undefined);
    if (maxima.length > 0) out[key] = Math.min(...maxima);
  }
  for (const { source, settings } of layers) {
    const max = settings.maxima;
    for (const key of ['cpu', 'memory', 'memorySwap', 'pids'] as const) {
      const limit = max[key];
      const value = out[key];
      if (limit !== undefined && value !== undefined && value > limit) {
        throw overMaximum(`limits.${key}`, value, limit, source, key);
      }
    }
  }
  // IO maxima fill in and check throttles layer by layer; a filled-in throttle takes the tightest.
  for (const { source, settings } of layers) {
    if (settings.maxima.io) out.io = capIo(out.io, settings.maxima.io, source, layers);
  }
  return out;
}

/** Whether `limits` sets nothing (without the arrays `Object.keys` would allocate). */
function isEmpty(limits: JobLimits): boolean {
  for (const key in limits) if ((limits as Record<string, unknown>)[key] !== undefined) return false;
  return true;
}

function capIo(
  io: IoLimits | undefined,
  max: IoLimits,
  source: string,
  layers: readonly { readonly settings: LimitSettings }[],
): IoLimits | undefined {
  const out: { -readonly [K in keyof IoLimits]: IoLimits[K] } = { ...io };
  for (const key of ['readBps', 'writeBps', 'readIops', 'writeIops', 'weight'] as const) {
    const limit = max[key];
    if (limit === undefined) continue;
    const value = out[key];
    if (value !== undefined && value > limit) {
      throw overMaximum(`limits.io.${key}`, value, limit, source, key);
    }
    // A weight is no throttle, and a throttle no weight: a missing throttle under a maximum is
    // filled in only for a job that asked for no weight.
    if (value === undefined && key !== 'weight' && out.weight === undefined) {
      const all = layers.map(({ settings }) => settings.maxima.io?.[key]).filter((m) => m !== undefined);
      out[key] = Math.min(...all);
    }
  }
  if (out.device === undefined && max.device !== undefined && out.weight === undefined)
    out.device = max.device;
  return Object.keys(out).length > 0 ? out : undefined;
}

function overMaximum(
  field: string,
  value: number,
  limit: number,
  source: string,
  key: string,
): ValidationError {
  return new ValidationError(
    field,
    `Expected \`${field}\` to be at most ${formatLimit(key, limit)} (the maximum of ${source}), got ${formatLimit(key, value)}`,
  );
}

/** One limit as messages show it: sizes in binary units, CPU in cores. */
export function formatLimit(key: string, value: number): string {
  if (key === 'cpu') return formatCpu(value);
  if (key === 'memory' || key === 'memorySwap') return formatBytes(value);
  if (key === 'readBps' || key === 'writeBps') return `${formatBytes(value)}/s`;
  return String(value);
}

/** Limits as one line (`memory=1 GiB, cpu=2`), for the CLI; `none` when empty. */
export function describeLimits(limits: JobLimits): string {
  const parts: string[] = [];
  for (const key of ['cpu', 'memory', 'memorySwap', 'pids'] as const) {
    const value = limits[key];
    if (value !== undefined) parts.push(`${key}=${formatLimit(key, value)}`);
  }
  if (limits.io) {
    for (const [key, value] of Object.entries(limits.io)) {
      parts.push(`io.${key}=${typeof value === 'number' ? formatLimit(key, value) : String(value)}`);
    }
  }
  return parts.length > 0 ? parts.join(', ') : 'none';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks limit settings as an admin writes them (a queue's, a user's): each of `defaultLimits` and
 * `maxLimits` as a spec's `limits`, and no default over its maximum. Absent parts stay absent.
 */
export function normalizeLimitSettings(input: { defaultLimits?: unknown; maxLimits?: unknown }): {
  defaults?: JobLimits;
  maxima?: JobLimits;
} {
  const defaults =
    input.defaultLimits === undefined || input.defaultLimits === null
      ? input.defaultLimits === null
        ? {}
        : undefined
      : normalizeLimits('defaultLimits', input.defaultLimits);
  const maxima =
    input.maxLimits === undefined || input.maxLimits === null
      ? input.maxLimits === null
        ? {}
        : undefined
      : normalizeLimits('maxLimits', input.maxLimits);
  if (defaults && maxima) {
    for (const key of ['cpu', 'memory', 'memorySwap', 'pids'] as const) {
      const value = defaults[key];
      const max = maxima[key];
      if (value !== undefined && max !== undefined && value > max) {
        throw new ValidationError(
          `defaultLimits.${key}`,
          `Expected \`defaultLimits.${key}\` to be at most \`maxLimits.${key}\` (${formatLimit(key, max)}), got ${formatLimit(key, value)}`,
        );
      }
    }
  }
  return { ...(defaults ? { defaults } : {}), ...(maxima ? { maxima } : {}) };
}
