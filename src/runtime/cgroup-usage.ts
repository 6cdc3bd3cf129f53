import { readFileSync } from 'node:fs';
import { childPath } from '../core/child-path.ts';
import type { JobUsage } from '../core/job.ts';

/** A job's cgroup directories by what they hold: its v2 cgroup, and one per v1 hierarchy. */
export interface JobCgroupDirs {
  readonly v2?: string;
  /**
   * The controllers enabled in the v2 cgroup (`memory`, `io`, `pids`; `cpu.stat` is always there).
   * Files of the others are not looked for: three failed opens at every job's end otherwise, on
   * hosts that do not delegate them. Unset: every file is looked for.
   */
  readonly v2Controllers?: ReadonlySet<string>;
  /** By v1 hierarchy name (`memory`, `cpu`, `cpuacct`, `blkio`, `pids`, `freezer`). */
  readonly v1: ReadonlyMap<string, string>;
}

/**
 * Reads what a job used from its cgroups' counters: v2 files where its v2 cgroup has them, else
 * the v1 hierarchy's. A figure no cgroup of the job measures is null; event counts default to 0.
 * Cheap (a handful of small reads): done live on GET and once at the job's end.
 */
export function readUsage(dirs: JobCgroupDirs): JobUsage {
  const { v1 } = dirs;
  const v2 = dirs.v2;
  const v2With = (controller: string): string | undefined =>
    v2 !== undefined && (dirs.v2Controllers?.has(controller) ?? true) ? v2 : undefined;
  const cpuStat = v2 ? keyed(read(childPath(v2, 'cpu.stat'))) : undefined;
  const v1Cpu = v1.get('cpu');
  const v1CpuStat = v1Cpu ? keyed(read(childPath(v1Cpu, 'cpu.stat'))) : undefined;
  const cpuacct = v1.get('cpuacct');

  let cpuSeconds: number | null = null;
  if (cpuStat?.has('usage_usec')) cpuSeconds = cpuStat.get('usage_usec')! / 1e6;
  else if (cpuacct) cpuSeconds = num(read(childPath(cpuacct, 'cpuacct.usage'))) / 1e9 || null;

  let cpuThrottledSeconds: number | null = null;
  if (cpuStat?.has('throttled_usec')) cpuThrottledSeconds = cpuStat.get('throttled_usec')! / 1e6;
  else if (v1CpuStat?.has('throttled_time')) cpuThrottledSeconds = v1CpuStat.get('throttled_time')! / 1e9;

  let memoryPeakBytes: number | null = null;
  let oomKills = 0;
  const v1Memory = v1.get('memory');
  const v2Memory = v2With('memory');
  const v2Events = v2Memory ? keyed(read(childPath(v2Memory, 'memory.events'))) : undefined;
  if (v2Memory && v2Events?.size) {
    const peak = read(childPath(v2Memory, 'memory.peak'));
    memoryPeakBytes = peak === undefined ? null : num(peak);
    oomKills = v2Events.get('oom_kill') ?? 0;
  } else if (v1Memory) {
    const peak = read(childPath(v1Memory, 'memory.max_usage_in_bytes'));
    memoryPeakBytes = peak === undefined ? null : num(peak);
    oomKills = keyed(read(childPath(v1Memory, 'memory.oom_control'))).get('oom_kill') ?? 0;
  }

  let ioReadBytes: number | null = null;
  let ioWriteBytes: number | null = null;
  const v2Io = v2With('io');
  const ioStat = v2Io ? read(childPath(v2Io, 'io.stat')) : undefined;
  const blkio = v1.get('blkio');
  if (ioStat !== undefined) {
    ioReadBytes = 0;
    ioWriteBytes = 0;
    for (const line of ioStat.split('\n')) {
      for (const field of line.split(' ')) {
        if (field.startsWith('rbytes=')) ioReadBytes += Number(field.slice(7));
        else if (field.startsWith('wbytes=')) ioWriteBytes += Number(field.slice(7));
      }
    }
  } else if (blkio) {
    const text = read(childPath(blkio, 'blkio.throttle.io_service_bytes_recursive'));
    if (text !== undefined) {
      ioReadBytes = 0;
      ioWriteBytes = 0;
      // "254:0 Read 4096" per device and operation, then "Total N".
      for (const line of text.split('\n')) {
        const [, op, value] = line.split(' ');
        if (op === 'Read') ioReadBytes += Number(value);
        else if (op === 'Write') ioWriteBytes += Number(value);
      }
    }
  }

  const v1Pids = v1.get('pids');
  const v2Pids = v2With('pids');
  const pidsEvents =
    (v2Pids ? read(childPath(v2Pids, 'pids.events')) : undefined) ??
    (v1Pids ? read(childPath(v1Pids, 'pids.events')) : undefined);
  const pidsLimitHits = keyed(pidsEvents).get('max') ?? 0;

  return {
    cpuSeconds,
    cpuThrottledSeconds,
    memoryPeakBytes,
    ioReadBytes,
    ioWriteBytes,
    oomKills,
    pidsLimitHits,
  };
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `key value` lines (cpu.stat, memory.events, pids.events, memory.oom_control). */
function keyed(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) out.set(key, Number(value));
  }
  return out;
}

function num(text: string | undefined): number {
  const n = Number((text ?? '').trim());
  return Number.isFinite(n) ? n : 0;
}
