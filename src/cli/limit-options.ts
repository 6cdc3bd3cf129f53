import type { Command } from 'commander';
import { ValidationError } from '../core/errors.ts';
import type { JobLimits } from '../core/job.ts';
import { normalizeLimits } from '../core/limits.ts';
import { UsageError } from './errors.ts';

/**
 * The limit flags (docs/cli.md, "Limits"): `start --cpu 0.5 --memory 256M ...`, and the same with
 * a prefix for settings (`queue set --default-memory 1G --max-memory 4G`, `user set-limits`).
 * Values are checked here by the one parser of units (core/limits.ts), so a bad one is a usage
 * error naming its flag before anything is sent.
 */

/** Each flag (without its prefix), the limit field it sets, and its help. */
const FLAGS = [
  { flag: 'cpu', field: 'cpu', arg: '<cores>', help: 'CPU quota: cores (0.5, 2) or millicores (500m)' },
  {
    flag: 'memory',
    field: 'memory',
    arg: '<size>',
    help: 'memory limit (256M, 1G); the OOM killer ends the job beyond it',
  },
  {
    flag: 'memory-swap',
    field: 'memorySwap',
    arg: '<size>',
    help: 'swap allowed beyond --memory (default 0)',
  },
  { flag: 'io-read', field: 'io.readBps', arg: '<size>', help: 'read bytes per second (10M)' },
  { flag: 'io-write', field: 'io.writeBps', arg: '<size>', help: 'written bytes per second (10M)' },
  { flag: 'io-read-iops', field: 'io.readIops', arg: '<n>', help: 'read operations per second' },
  { flag: 'io-write-iops', field: 'io.writeIops', arg: '<n>', help: 'write operations per second' },
  {
    flag: 'io-device',
    field: 'io.device',
    arg: '<path>',
    help: "block device the IO limits apply to (default: the one holding the job's directory)",
  },
  {
    flag: 'io-weight',
    field: 'io.weight',
    arg: '<n>',
    help: 'proportional IO weight, 1 to 10000 (not with the IO limits above)',
  },
  { flag: 'pids', field: 'pids', arg: '<n>', help: 'most processes and threads at once' },
] as const;

/** Adds the limit flags to `command`: `--memory`, or `--PREFIX-memory` with a prefix. */
export function addLimitOptions(command: Command, prefix?: 'default' | 'max', what = ''): Command {
  for (const { flag, arg, help } of FLAGS) {
    command.option(`--${prefix ? `${prefix}-` : ''}${flag} ${arg}`, what ? `${what}: ${help}` : help);
  }
  return command;
}

/** True when any limit flag (with this prefix) was given. */
export function hasLimitOptions(options: object, prefix?: 'default' | 'max'): boolean {
  return FLAGS.some(({ flag }) => optionValue(options, prefix, flag) !== undefined);
}

/**
 * The limits the flags give, normalized; undefined when none was given. A bad value is a
 * `UsageError` naming the flag ("Expected `--memory` to be a size like `256M`...").
 */
export function limitsFromOptions(options: object, prefix?: 'default' | 'max'): JobLimits | undefined {
  const raw: Record<string, unknown> = {};
  const io: Record<string, unknown> = {};
  for (const { flag, field } of FLAGS) {
    const value = optionValue(options, prefix, flag);
    if (value === undefined) continue;
    if (field.startsWith('io.')) io[field.slice(3)] = value;
    else raw[field] = value;
  }
  if (Object.keys(io).length > 0) raw.io = io;
  if (Object.keys(raw).length === 0) return undefined;
  try {
    return normalizeLimits('limits', raw);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const entry = FLAGS.find(({ field }) => err.field === `limits.${field}`);
    const name = `--${prefix ? `${prefix}-` : ''}${entry?.flag ?? 'io-*'}`;
    throw new UsageError(err.message.replaceAll(`\`${err.field}\``, `\`${name}\``));
  }
}

function optionValue(options: object, prefix: string | undefined, flag: string): string | undefined {
  const name = `${prefix ? `${prefix}-` : ''}${flag}`.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const value = (options as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * `current` with the limits in `changes` replaced, each flag its own: `--max-io-write` keeps the
 * `--max-io-read` set before. A weight and the throttles exclude each other, so a change from one
 * kind to the other replaces the whole `io`.
 */
export function mergeLimits(current: JobLimits | undefined, changes: JobLimits | undefined): JobLimits {
  const merged: JobLimits = { ...(current ?? {}), ...(changes ?? {}) };
  const before = current?.io;
  const change = changes?.io;
  if (before === undefined || change === undefined) return merged;
  if (change.weight !== undefined || before.weight !== undefined) return merged;
  return { ...merged, io: { ...before, ...change } };
}
