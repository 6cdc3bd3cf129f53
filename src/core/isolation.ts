import { ValidationError } from './errors.ts';
import type { JobIsolation, JobMountIsolation } from './job.ts';

/**
 * Namespaces a job may ask for (docs/isolation.md, "Namespaces"): checked and normalized here,
 * once, for the REST and RPC adapters, the CLI and the defaults of queues, users and the server.
 */

/** What `jobworker start --isolate` asks for: its own processes, its own /tmp, no network. */
export const ISOLATE_PRESET: JobIsolation = { pid: true, network: 'none', mount: { privateTmp: true } };

/** Bounds that keep one spec's isolation small. */
export const ISOLATION_LIMITS = { paths: 64, pathBytes: 4096, hostnameChars: 64 } as const;

/** RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens. */
const HOSTNAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Checks an `isolation` object and returns its normalized form (fields that ask for nothing are
 * left out, so `{}` means the host's namespaces). Throws a `ValidationError` naming the field.
 */
export function normalizeIsolation(value: unknown, field = 'isolation'): JobIsolation {
  if (!isPlainObject(value)) throw ValidationError.expected(field, 'an object', value);
  const out: { -readonly [K in keyof JobIsolation]: JobIsolation[K] } = {};
  for (const [key, val] of Object.entries(value)) {
    const at = `${field}.${key}`;
    if (key === 'pid') {
      if (typeof val !== 'boolean') throw ValidationError.expected(at, 'a boolean', val);
      if (val) out.pid = true;
    } else if (key === 'network') {
      if (val !== 'none' && val !== 'host') throw ValidationError.expected(at, '"none" or "host"', val);
      if (val === 'none') out.network = 'none';
    } else if (key === 'mount') {
      const mount = normalizeMount(val, at);
      if (Object.keys(mount).length > 0) out.mount = mount;
    } else if (key === 'hostname') {
      if (typeof val !== 'string' || val.length > ISOLATION_LIMITS.hostnameChars || !HOSTNAME.test(val)) {
        throw ValidationError.expected(
          at,
          `a host name of letters, digits, '-' and '.' (at most ${ISOLATION_LIMITS.hostnameChars} characters)`,
          val,
        );
      }
      out.hostname = val;
    } else {
      throw new ValidationError(at, `Unknown field \`${at}\``);
    }
  }
  return out;
}

function normalizeMount(value: unknown, field: string): JobMountIsolation {
  if (!isPlainObject(value)) throw ValidationError.expected(field, 'an object', value);
  const out: { -readonly [K in keyof JobMountIsolation]: JobMountIsolation[K] } = {};
  for (const [key, val] of Object.entries(value)) {
    const at = `${field}.${key}`;
    if (key === 'privateTmp') {
      if (typeof val !== 'boolean') throw ValidationError.expected(at, 'a boolean', val);
      if (val) out.privateTmp = true;
    } else if (key === 'readOnly' || key === 'hide') {
      const paths = pathList(val, at);
      if (paths.length > 0) out[key] = paths;
    } else {
      throw new ValidationError(at, `Unknown field \`${at}\``);
    }
  }
  return out;
}

function pathList(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) throw ValidationError.expected(field, 'an array of absolute paths', value);
  if (value.length > ISOLATION_LIMITS.paths) {
    throw ValidationError.expected(field, `at most ${ISOLATION_LIMITS.paths} paths`, `${value.length} paths`);
  }
  return value.map((path: unknown, i) => {
    const at = `${field}[${i}]`;
    const ok =
      typeof path === 'string' &&
      path.startsWith('/') &&
      path !== '/' &&
      !path.includes('\0') &&
      path.isWellFormed() &&
      Buffer.byteLength(path) <= ISOLATION_LIMITS.pathBytes &&
      !path.split('/').some((part) => part === '..' || part === '.');
    // The root itself cannot be bound over itself (the job's root would still be the host's).
    if (!ok) throw ValidationError.expected(at, 'an absolute path other than `/`, without `.` or `..`', path);
    return path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') : path;
  });
}

/**
 * Both isolations at once: each namespace either asks for, the paths of both, `a`'s host name
 * unless it has none. Used to add a forced isolation to what a job would get anyway.
 */
export function mergeIsolation(
  a: JobIsolation | null | undefined,
  b: JobIsolation | null | undefined,
): JobIsolation | undefined {
  if (!a || !b) return a ?? b ?? undefined;
  const readOnly = [...new Set([...(a.mount?.readOnly ?? []), ...(b.mount?.readOnly ?? [])])];
  const hide = [...new Set([...(a.mount?.hide ?? []), ...(b.mount?.hide ?? [])])];
  const mount: JobMountIsolation = {
    ...(a.mount?.privateTmp || b.mount?.privateTmp ? { privateTmp: true } : {}),
    ...(readOnly.length > 0 ? { readOnly } : {}),
    ...(hide.length > 0 ? { hide } : {}),
  };
  const hostname = a.hostname ?? b.hostname;
  return {
    ...(a.pid || b.pid ? { pid: true } : {}),
    ...(a.network === 'none' || b.network === 'none' ? { network: 'none' as const } : {}),
    ...(Object.keys(mount).length > 0 ? { mount } : {}),
    ...(hostname !== undefined ? { hostname } : {}),
  };
}

/** True when the isolation asks for any namespace at all. */
export function isIsolated(isolation: JobIsolation | null | undefined): isolation is JobIsolation {
  return isolation !== undefined && isolation !== null && Object.keys(isolation).length > 0;
}

/** The Linux namespaces an isolation needs, by their `/proc/self/ns` names. */
export function namespacesOf(isolation: JobIsolation): ('pid' | 'net' | 'mnt' | 'uts')[] {
  const out: ('pid' | 'net' | 'mnt' | 'uts')[] = [];
  const { mount } = isolation;
  if (isolation.pid) out.push('pid');
  if (isolation.network === 'none') out.push('net');
  if (isolation.pid || mount?.privateTmp || mount?.readOnly || mount?.hide) out.push('mnt');
  if (isolation.hostname !== undefined) out.push('uts');
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
