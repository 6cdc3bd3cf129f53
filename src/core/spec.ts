import { ValidationError } from './errors.ts';
import type { JobLimits, JobSpec } from './job.ts';

/** What a caller may submit: every field but `command` is optional. */
export interface JobSpecInput {
  command: string;
  args?: string[];
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number | null;
  name?: string | null;
  labels?: Record<string, string>;
  limits?: JobLimits;
}

/** Bounds that keep one submission from exhausting the server. */
export const SPEC_LIMITS = {
  commandBytes: 64 * 1024,
  args: 4096,
  argsBytes: 1024 * 1024,
  envEntries: 1024,
  envBytes: 256 * 1024,
  pathBytes: 4096,
  nameChars: 200,
  labels: 64,
  labelKeyChars: 63,
  labelValueChars: 256,
  timeoutMs: 366 * 24 * 3600 * 1000,
} as const;

const SPEC_FIELDS = new Set([
  'command',
  'args',
  'shell',
  'env',
  'cwd',
  'timeoutMs',
  'name',
  'labels',
  'limits',
]);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

/**
 * Checks a submitted spec and returns its normalized form, or throws a `ValidationError`
 * naming the first bad field. Pure: the filesystem checks (cwd exists, command found)
 * happen in the runtime just before spawning.
 */
export function normalizeSpec(input: unknown, defaults: { cwd: string }): JobSpec {
  if (!isPlainObject(input)) throw ValidationError.expected('spec', 'an object', input);
  for (const key of Object.keys(input)) {
    if (!SPEC_FIELDS.has(key)) throw new ValidationError(key, `Unknown field \`${key}\``);
  }
  const command = text('command', input.command, SPEC_LIMITS.commandBytes);
  if (command.trim() === '') throw ValidationError.expected('command', 'a non-empty string', command);

  const args = optional(input.args, [] as string[], (value) => {
    if (!Array.isArray(value)) throw ValidationError.expected('args', 'an array of strings', value);
    if (value.length > SPEC_LIMITS.args) {
      throw ValidationError.expected('args', `at most ${SPEC_LIMITS.args} items`, `${value.length} items`);
    }
    let bytes = 0;
    const out = value.map((arg: unknown, i) => {
      const s = text(`args[${i}]`, arg, SPEC_LIMITS.argsBytes);
      bytes += Buffer.byteLength(s);
      return s;
    });
    if (bytes > SPEC_LIMITS.argsBytes) {
      throw ValidationError.expected(
        'args',
        `at most ${SPEC_LIMITS.argsBytes} bytes in all`,
        `${bytes} bytes`,
      );
    }
    return out;
  });

  const shell = optional(input.shell, false, (value) => {
    if (typeof value !== 'boolean') throw ValidationError.expected('shell', 'a boolean', value);
    return value;
  });

  const env = optional(input.env, {}, (value) => {
    const entries = stringMap('env', value, SPEC_LIMITS.envEntries);
    let bytes = 0;
    for (const [key, val] of entries) {
      if (!ENV_NAME.test(key)) {
        throw new ValidationError(
          `env.${key}`,
          `Expected environment variable names like \`FOO_BAR\`, got ${JSON.stringify(key)}`,
        );
      }
      text(`env.${key}`, val, SPEC_LIMITS.envBytes);
      bytes += key.length + Buffer.byteLength(val) + 2;
    }
    if (bytes > SPEC_LIMITS.envBytes) {
      throw ValidationError.expected('env', `at most ${SPEC_LIMITS.envBytes} bytes in all`, `${bytes} bytes`);
    }
    return Object.fromEntries(entries);
  });

  const cwd = optional(input.cwd, defaults.cwd, (value) => {
    const dir = text('cwd', value, SPEC_LIMITS.pathBytes);
    if (!dir.startsWith('/')) throw ValidationError.expected('cwd', 'an absolute path', dir);
    return dir;
  });

  const timeoutMs = optional(input.timeoutMs, null, (value) => {
    if (value === null) return null;
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value <= 0 ||
      value > SPEC_LIMITS.timeoutMs
    ) {
      throw ValidationError.expected(
        'timeoutMs',
        `a positive integer of milliseconds up to ${SPEC_LIMITS.timeoutMs}`,
        value,
      );
    }
    return value;
  });

  const name = optional(input.name, null, (value) => {
    if (value === null) return null;
    const s = text('name', value, SPEC_LIMITS.nameChars * 4);
    if (s.length === 0 || s.length > SPEC_LIMITS.nameChars) {
      throw ValidationError.expected('name', `1 to ${SPEC_LIMITS.nameChars} characters`, s);
    }
    return s;
  });

  const labels = optional(input.labels, {}, (value) => {
    const entries = stringMap('labels', value, SPEC_LIMITS.labels);
    for (const [key, val] of entries) {
      if (key.length > SPEC_LIMITS.labelKeyChars || !LABEL_KEY.test(key)) {
        throw new ValidationError(
          `labels.${key}`,
          `Expected label keys of letters, digits, '.', '_', '/' or '-' (at most ${SPEC_LIMITS.labelKeyChars}), got ${JSON.stringify(key)}`,
        );
      }
      const v = text(`labels.${key}`, val, SPEC_LIMITS.labelValueChars * 4);
      if (v.length > SPEC_LIMITS.labelValueChars) {
        throw ValidationError.expected(
          `labels.${key}`,
          `at most ${SPEC_LIMITS.labelValueChars} characters`,
          v,
        );
      }
    }
    return Object.fromEntries(entries);
  });

  const limits = optional(input.limits, {}, (value): JobLimits => {
    if (!isPlainObject(value)) throw ValidationError.expected('limits', 'an object', value);
    const out: { memoryBytes?: number; cpuMillis?: number } = {};
    for (const [key, val] of Object.entries(value)) {
      if (key !== 'memoryBytes' && key !== 'cpuMillis') {
        throw new ValidationError(`limits.${key}`, `Unknown field \`limits.${key}\``);
      }
      const min = key === 'memoryBytes' ? 1024 * 1024 : 10;
      if (typeof val !== 'number' || !Number.isSafeInteger(val) || val < min) {
        throw ValidationError.expected(`limits.${key}`, `an integer of at least ${min}`, val);
      }
      out[key] = val;
    }
    return out;
  });

  return { command, args, shell, env, cwd, timeoutMs, name, labels, limits };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optional<T>(value: unknown, fallback: T, parse: (value: unknown) => T): T {
  return value === undefined ? fallback : parse(value);
}

function text(field: string, value: unknown, maxBytes: number): string {
  if (typeof value !== 'string') throw ValidationError.expected(field, 'a string', value);
  if (value.includes('\0')) throw new ValidationError(field, `Expected \`${field}\` to contain no NUL byte`);
  if (Buffer.byteLength(value) > maxBytes) {
    throw ValidationError.expected(field, `at most ${maxBytes} bytes`, `${Buffer.byteLength(value)} bytes`);
  }
  return value;
}

function stringMap(field: string, value: unknown, maxEntries: number): [string, string][] {
  if (!isPlainObject(value)) throw ValidationError.expected(field, 'an object of strings', value);
  const entries = Object.entries(value);
  if (entries.length > maxEntries) {
    throw ValidationError.expected(field, `at most ${maxEntries} entries`, `${entries.length} entries`);
  }
  for (const [key, val] of entries) {
    if (key.includes('\0'))
      throw new ValidationError(field, `Expected \`${field}\` keys to contain no NUL byte`);
    if (typeof val !== 'string') throw ValidationError.expected(`${field}.${key}`, 'a string', val);
  }
  return entries as [string, string][];
}
