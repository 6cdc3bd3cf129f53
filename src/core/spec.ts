import { ValidationError } from './errors.ts';
import { isJobId } from './ids.ts';
import { normalizeIsolation } from './isolation.ts';
import type { JobIsolation, JobLimits, JobSpec, RetryPolicy } from './job.ts';
import { normalizeLimits } from './limits.ts';
import { type JobNotify, jobNotify } from './webhook.ts';

/**
 * Limits as a caller may write them: sizes as numbers of bytes or text with units (`"256M"`),
 * CPU as cores or millicores (`"500m"`), and API v1's `memoryBytes` and `cpuMillis`.
 */
export interface LimitsInput {
  cpu?: number | string;
  memory?: number | string;
  memorySwap?: number | string;
  io?: {
    readBps?: number | string;
    writeBps?: number | string;
    readIops?: number | string;
    writeIops?: number | string;
    device?: string;
    weight?: number | string;
  };
  pids?: number | string;
  /** API v1: `memory` in bytes. */
  memoryBytes?: number;
  /** API v1: `cpu` in thousandths of a core. */
  cpuMillis?: number;
}

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
  /** As written: units allowed (`normalizeLimits`). */
  limits?: LimitsInput;
  /** Namespaces to run in (src/core/isolation.ts); left out: the queue's, the user's or the server's default. */
  isolation?: JobIsolation;
  queue?: string;
  priority?: number;
  after?: string[];
  retry?: { attempts: number; backoff?: Partial<RetryPolicy['backoff']> } | null;
  dedupeKey?: string | null;
  /** Whose dedupe keys `dedupeKey` is unique among: the owner's unless an admin names another user. */
  dedupeScope?: string | null;
  /** Submission only (see `normalizeSubmission`): not before this ISO 8601 time. */
  runAt?: string;
  /** Submission only: not before this many milliseconds from now. */
  delayMs?: number;
  /** Submission only: what a duplicate `dedupeKey` answers. */
  onDuplicate?: 'reject' | 'return';
  /**
   * Run as root rather than as the caller's account: admins only, checked by the service. The
   * account the job ran as is recorded on its spec (`account`).
   */
  runAsRoot?: boolean;
  /** Where to POST this job's events (docs/webhooks.md). */
  notify?: { url: string; events?: string[] };
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
  priority: 1000,
  after: 100,
  attempts: 100,
  backoffMs: 7 * 24 * 3600 * 1000,
  backoffFactor: 100,
  dedupeKeyChars: 200,
} as const;

/** The backoff of a retry policy that names none, or only some of it. */
export const RETRY_BACKOFF_DEFAULTS = { initialMs: 1000, factor: 2, maxMs: 300_000 } as const;

/** The queue of a job that names none. */
export const DEFAULT_QUEUE = 'default';

/** Queue names: what fits a URL path segment and a CLI word without quoting. */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

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
  'isolation',
  'queue',
  'priority',
  'after',
  'retry',
  'dedupeKey',
  'dedupeScope',
  'notify',
  // Checked by normalizeSubmission: they say when and how to admit, not what to run.
  'runAt',
  'delayMs',
  'onDuplicate',
  // Checked by the service, which picks the job's account: it says who runs it, not what.
  'runAsRoot',
]);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

/** What a spec that leaves a field out gets. */
export interface SpecDefaults {
  /** The working directory (the server user's home for API jobs: docs/api.md). */
  readonly cwd: string;
  /** The timeout of a job that sets none (an explicit `timeoutMs: null` keeps none). Default: none. */
  readonly timeoutMs?: number | null;
}

/**
 * Checks a submitted spec and returns its normalized form, or throws a `ValidationError`
 * naming the first bad field. Pure: the filesystem checks (cwd exists, command found)
 * happen in the runtime just before spawning.
 */
export function normalizeSpec(input: unknown, defaults: SpecDefaults): JobSpec {
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

  const timeoutMs = optional(input.timeoutMs, defaults.timeoutMs ?? null, (value) => {
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

  const limits = optional(input.limits, {}, (value): JobLimits => normalizeLimits('limits', value));

  const isolation = input.isolation === undefined ? undefined : normalizeIsolation(input.isolation);

  const queue = optional(input.queue, DEFAULT_QUEUE, (value) => queueName('queue', value));

  const priority = optional(input.priority, 0, (value) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) > SPEC_LIMITS.priority) {
      throw ValidationError.expected(
        'priority',
        `an integer from -${SPEC_LIMITS.priority} to ${SPEC_LIMITS.priority}`,
        value,
      );
    }
    return value;
  });

  const after = optional(input.after, [] as string[], (value) => {
    if (!Array.isArray(value)) throw ValidationError.expected('after', 'an array of job ids', value);
    if (value.length > SPEC_LIMITS.after) {
      throw ValidationError.expected('after', `at most ${SPEC_LIMITS.after} job ids`, `${value.length} ids`);
    }
    const seen = new Set<string>();
    return value.map((id: unknown, i) => {
      if (typeof id !== 'string' || !isJobId(id)) {
        throw ValidationError.expected(`after[${i}]`, 'a job id (a UUIDv7)', id);
      }
      if (seen.has(id)) throw new ValidationError(`after[${i}]`, `Job ${id} is named twice in \`after\``);
      seen.add(id);
      return id;
    });
  });

  const retry = optional(input.retry, null, (value) => (value === null ? null : retryPolicy(value)));

  const dedupeKey = optional(input.dedupeKey, null, (value) => {
    if (value === null) return null;
    const key = text('dedupeKey', value, SPEC_LIMITS.dedupeKeyChars * 4);
    if (key.length === 0 || key.length > SPEC_LIMITS.dedupeKeyChars) {
      throw ValidationError.expected('dedupeKey', `1 to ${SPEC_LIMITS.dedupeKeyChars} characters`, key);
    }
    return key;
  });

  const dedupeScope = optional(input.dedupeScope, null, (value) => {
    if (value === null) return null;
    const scope = text('dedupeScope', value, SPEC_LIMITS.dedupeKeyChars * 4);
    if (scope.length === 0 || scope.length > SPEC_LIMITS.dedupeKeyChars) {
      throw ValidationError.expected(
        'dedupeScope',
        `a user name of 1 to ${SPEC_LIMITS.dedupeKeyChars} characters`,
        scope,
      );
    }
    return scope;
  });
  if (input.runAsRoot !== undefined && typeof input.runAsRoot !== 'boolean') {
    throw ValidationError.expected('runAsRoot', 'a boolean', input.runAsRoot);
  }

  const notify: JobNotify | undefined = input.notify === undefined ? undefined : jobNotify(input.notify);

  if (dedupeScope !== null && dedupeKey === null) {
    throw ValidationError.expected('dedupeScope', 'given only with a `dedupeKey`', dedupeScope);
  }

  return {
    command,
    args,
    shell,
    env,
    cwd,
    timeoutMs,
    name,
    labels,
    limits,
    ...(isolation ? { isolation } : {}),
    queue,
    priority,
    after,
    retry,
    dedupeKey,
    dedupeScope,
    account: null,
    task: null,
    ...(notify ? { notify } : {}),
  };
}

/** A queue name, or a `ValidationError` on `field`. */
export function queueName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !QUEUE_NAME.test(value)) {
    throw ValidationError.expected(
      field,
      "a queue name: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
      value,
    );
  }
  return value;
}

function retryPolicy(value: unknown): RetryPolicy {
  if (!isPlainObject(value))
    throw ValidationError.expected('retry', 'an object `{attempts, backoff?}`', value);
  for (const key of Object.keys(value)) {
    if (key !== 'attempts' && key !== 'backoff') {
      throw new ValidationError(`retry.${key}`, `Unknown field \`retry.${key}\``);
    }
  }
  const { attempts } = value;
  if (
    typeof attempts !== 'number' ||
    !Number.isInteger(attempts) ||
    attempts < 1 ||
    attempts > SPEC_LIMITS.attempts
  ) {
    throw ValidationError.expected(
      'retry.attempts',
      `an integer from 1 to ${SPEC_LIMITS.attempts} (runs in all, the first included)`,
      attempts,
    );
  }
  const backoff = optional(value.backoff, {}, (b) => {
    if (!isPlainObject(b)) throw ValidationError.expected('retry.backoff', 'an object', b);
    return b;
  });
  const out: { initialMs: number; factor: number; maxMs: number } = { ...RETRY_BACKOFF_DEFAULTS };
  for (const [key, val] of Object.entries(backoff)) {
    const field = `retry.backoff.${key}`;
    if (key === 'factor') {
      if (typeof val !== 'number' || !Number.isFinite(val) || val < 1 || val > SPEC_LIMITS.backoffFactor) {
        throw ValidationError.expected(field, `a number from 1 to ${SPEC_LIMITS.backoffFactor}`, val);
      }
      out.factor = val;
    } else if (key === 'initialMs' || key === 'maxMs') {
      if (typeof val !== 'number' || !Number.isInteger(val) || val < 0 || val > SPEC_LIMITS.backoffMs) {
        throw ValidationError.expected(
          field,
          `an integer of milliseconds from 0 to ${SPEC_LIMITS.backoffMs}`,
          val,
        );
      }
      out[key] = val;
    } else {
      throw new ValidationError(field, `Unknown field \`${field}\``);
    }
  }
  // A long first wait with no maximum given is its own maximum, not an error.
  if (!('maxMs' in backoff) && out.maxMs < out.initialMs) out.maxMs = out.initialMs;
  if (out.maxMs < out.initialMs) {
    throw ValidationError.expected('retry.backoff.maxMs', `at least initialMs (${out.initialMs})`, out.maxMs);
  }
  return { attempts, backoff: out };
}

/** The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  const { initialMs, factor, maxMs } = policy.backoff;
  return Math.min(maxMs, Math.round(initialMs * factor ** (attempt - 1)));
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
  wellFormed(field, value);
  if (Buffer.byteLength(value) > maxBytes) {
    throw ValidationError.expected(field, `at most ${maxBytes} bytes`, `${Buffer.byteLength(value)} bytes`);
  }
  return value;
}

/**
 * Refuses a string holding a lone UTF-16 surrogate (JSON's `"\\ud800"`): it has no UTF-8 form, so
 * it would be stored and shown as given while the process received U+FFFD (EF BF BD) instead.
 */
function wellFormed(field: string, value: string, what = `\`${field}\``): void {
  if (value.isWellFormed()) return;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    const pair = unit <= 0xdbff && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (pair) {
      i++;
      continue;
    }
    throw new ValidationError(
      field,
      `Expected ${what} to be Unicode text, got a lone surrogate \\u${unit.toString(16)} at index ${i}: not valid UTF-8`,
    );
  }
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
    wellFormed(field, key, `the keys of \`${field}\``);
    if (typeof val !== 'string') throw ValidationError.expected(`${field}.${key}`, 'a string', val);
  }
  return entries as [string, string][];
}
