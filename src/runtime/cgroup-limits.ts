import { existsSync, writeFileSync } from 'node:fs';
import { childPath } from '../core/child-path.ts';
import type { JobLimits } from '../core/job.ts';

/**
 * Writing a job's limits into its cgroups: the v2 files where the unified hierarchy has the
 * controller, the v1 equivalents where only a v1 hierarchy does (docs/isolation.md, "Limits").
 * Which controller enforces what is decided once, by `Cgroups`; these only write.
 */

/** The CFS period every quota is expressed in: 100 ms, the kernel's default. */
const CPU_PERIOD_US = 100_000;

/** The v2 controllers a limit needs (`cpu`, `memory`, `io`, `pids`), by limit. */
export function controllersFor(limits: JobLimits): { controller: V2Controller; field: string }[] {
  const out: { controller: V2Controller; field: string }[] = [];
  if (limits.cpu !== undefined) out.push({ controller: 'cpu', field: 'limits.cpu' });
  if (limits.memory !== undefined) out.push({ controller: 'memory', field: 'limits.memory' });
  if (limits.memorySwap !== undefined) out.push({ controller: 'memory', field: 'limits.memorySwap' });
  if (limits.io !== undefined) out.push({ controller: 'io', field: 'limits.io' });
  if (limits.pids !== undefined) out.push({ controller: 'pids', field: 'limits.pids' });
  return out;
}

export type V2Controller = 'cpu' | 'memory' | 'io' | 'pids';

/** The v1 hierarchy that stands in for a v2 controller. */
export const V1_EQUIVALENT: Readonly<Record<V2Controller, string>> = {
  cpu: 'cpu',
  memory: 'memory',
  io: 'blkio',
  pids: 'pids',
};

/** Writes the limits one v2 controller enforces into the job's v2 cgroup. */
export function writeV2Limits(
  dir: string,
  controller: V2Controller,
  limits: JobLimits,
  ioDevice?: string,
  weightFile?: string,
): void {
  switch (controller) {
    case 'cpu':
      if (limits.cpu !== undefined) write(dir, 'cpu.max', `${cpuQuotaUs(limits.cpu)} ${CPU_PERIOD_US}`);
      break;
    case 'memory':
      if (limits.memory !== undefined) write(dir, 'memory.max', String(limits.memory));
      // Without swap off, a job over its limit swaps instead of being stopped by the limit. Where
      // the file is missing (no swap accounting), `Cgroups.checkLimits` let the job in only on a
      // host without swap, where the memory limit alone is exact.
      if (limits.memorySwap !== undefined || limits.memory !== undefined) {
        if (existsSync(childPath(dir, 'memory.swap.max'))) {
          write(dir, 'memory.swap.max', String(limits.memorySwap ?? 0));
        }
      }
      break;
    case 'io': {
      const io = limits.io;
      if (!io) break;
      if (io.weight !== undefined) {
        if (weightFile === 'io.bfq.weight') write(dir, weightFile, `default ${bfqWeight(io.weight)}`);
        else if (weightFile === 'io.weight') write(dir, weightFile, `default ${io.weight}`);
        break;
      }
      const parts = [
        io.readBps !== undefined ? `rbps=${io.readBps}` : '',
        io.writeBps !== undefined ? `wbps=${io.writeBps}` : '',
        io.readIops !== undefined ? `riops=${io.readIops}` : '',
        io.writeIops !== undefined ? `wiops=${io.writeIops}` : '',
      ].filter(Boolean);
      if (ioDevice && parts.length > 0) write(dir, 'io.max', `${ioDevice} ${parts.join(' ')}`);
      break;
    }
    case 'pids':
      if (limits.pids !== undefined) write(dir, 'pids.max', String(limits.pids));
      break;
  }
}

/** Writes the limits of one v1 hierarchy (`cpu`, `memory`, `blkio`, `pids`) into the job's cgroup there. */
export function writeV1Limits(
  dir: string,
  hierarchy: string,
  limits: JobLimits,
  ioDevice?: string,
  weightFile?: string,
): void {
  switch (hierarchy) {
    case 'cpu':
      if (limits.cpu !== undefined) {
        write(dir, 'cpu.cfs_period_us', String(CPU_PERIOD_US));
        write(dir, 'cpu.cfs_quota_us', String(cpuQuotaUs(limits.cpu)));
      }
      break;
    case 'memory':
      if (limits.memory !== undefined) {
        write(dir, 'memory.limit_in_bytes', String(limits.memory));
        // memsw is memory and swap together; it must be set after (and never below) the memory limit.
        // Missing (no swap accounting): only on a host without swap (`Cgroups.checkLimits`).
        if (existsSync(childPath(dir, 'memory.memsw.limit_in_bytes'))) {
          write(dir, 'memory.memsw.limit_in_bytes', String(limits.memory + (limits.memorySwap ?? 0)));
        }
      }
      break;
    case 'blkio': {
      const io = limits.io;
      if (!io) break;
      if (io.weight !== undefined) {
        if (weightFile === 'blkio.bfq.weight') write(dir, weightFile, String(bfqWeight(io.weight)));
        // CFQ's scale is 10 to 1000.
        else if (weightFile === 'blkio.weight')
          write(dir, weightFile, String(Math.max(10, bfqWeight(io.weight))));
        break;
      }
      if (!ioDevice) break;
      const throttles: [string, number | undefined][] = [
        ['blkio.throttle.read_bps_device', io.readBps],
        ['blkio.throttle.write_bps_device', io.writeBps],
        ['blkio.throttle.read_iops_device', io.readIops],
        ['blkio.throttle.write_iops_device', io.writeIops],
      ];
      for (const [file, value] of throttles)
        if (value !== undefined) write(dir, file, `${ioDevice} ${value}`);
      break;
    }
    case 'pids':
      if (limits.pids !== undefined) write(dir, 'pids.max', String(limits.pids));
      break;
  }
}

/** The v2 weight scale (1 to 10000, default 100) on BFQ's (1 to 1000, default 100). */
function bfqWeight(weight: number): number {
  return Math.max(1, Math.min(1000, weight <= 100 ? weight : Math.round(100 + (weight - 100) / 10.9)));
}

function cpuQuotaUs(cores: number): number {
  // The kernel refuses a quota below 1 ms.
  return Math.max(1000, Math.round(cores * CPU_PERIOD_US));
}

function write(dir: string, file: string, text: string): void {
  writeFileSync(childPath(dir, file), text);
}
